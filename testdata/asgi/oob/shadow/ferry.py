"""The app's own module named ferry: the runner must leave it alone."""

WHOAMI = "the app's own ferry"
