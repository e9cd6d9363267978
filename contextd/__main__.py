import sys

if __name__ == "__main__":
    if sys.argv[1:] == ["mcp"]:  # agents' hot path: no CLI imports
        from contextd.mcp_server.stdio import serve_stdio

        sys.exit(serve_stdio())
    from contextd.cli.main import main

    main()
