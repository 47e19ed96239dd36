// Whether audio and video are available, and where. This file says "no":
// package meeting's pages on their own have no SFU. Parley's Server
// serves its own version of it, naming the signalling WebSocket.
'use strict';
window.parleyMediaConfig = null;
