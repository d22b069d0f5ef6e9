"""Reports: tcpdump-identical text, hex dumps, and (later) timelines, tables and handouts."""
