"""Development only: the launcher that runs the emulator and both services on this machine
(`dualnova up`, `make demo`, the tests). Never in the container image (.dockerignore)."""
