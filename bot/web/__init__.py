"""The browser terminal: signed links, the page (vendored xterm.js) and the exec bridge."""
