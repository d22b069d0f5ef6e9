from capdissect.console import main

main()
