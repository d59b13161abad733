"""A minimal installed app with every extension module, for the discovery tests."""
