// A startup file that fails while loading, for the loader's error handshake.
console.log('about to fail');
throw new Error('broken fixture: cannot load frobnicate');
