// An app that loads fine but never listens: the core's start timeout has to
// give up on it. The interval keeps the process alive, as a real app's
// database connection or job queue would.
console.log('loaded, but never listening');
setInterval(() => {}, 60 * 1000);
