"""Tracking: what each packet means for its connection (pure: records in, records out)."""
