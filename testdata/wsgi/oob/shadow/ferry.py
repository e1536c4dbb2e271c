"""The app's own module named ferry: the loader must leave it alone."""

WHOAMI = "the app's own ferry"
