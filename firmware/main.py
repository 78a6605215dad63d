from streetfw.app import main

main()
