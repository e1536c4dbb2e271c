// Placeholder: the Node.js loader is being written (issue 3).
process.exit(1);
