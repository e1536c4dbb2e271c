# Placeholder: the Rack loader is being written (issue 3).
abort "rack loader not implemented yet"
