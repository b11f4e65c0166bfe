from meterbook.cli import main

main()
