from capdissect.cli import main

main()
