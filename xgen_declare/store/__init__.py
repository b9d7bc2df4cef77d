"""The model store (issue 23): hub sources fetched once into huggingface_hub's cache layout, verified, with
disk preflight and progress. No daemon wiring yet."""
