// Vidda's video visit page (/visit/{appointmentId}), for the patient and
// the practitioners of the visit. It speaks the signaling protocol v1
// (signaling/doc.go) over the websocket and keeps one RTCPeerConnection
// with Vidda's SFU (signaling/sfu):
//
//   - the camera and microphone check: own preview and a level meter;
//   - Join: POST /video/visits/{id}/join (session cookie + X-CSRF-Token)
//     gives a join token, sent as the websocket's first message;
//   - the client offers first (its audio and video, video as simulcast
//     q/h/f where the browser allows); the server re-offers when the
//     tracks it forwards change and for ICE restarts. The server is the
//     impolite peer of perfect negotiation, this page the polite one: an
//     offer arriving while its own is out rolls its own back;
//   - one tile per remote stream (the stream id is the publisher's
//     reference, percent-escaped), removed when the stream ends or its
//     participant leaves;
//   - mute, camera off and audio only send the protocol's mute and
//     audio-only messages and stop sending video; the server's quality and
//     audio-only messages show as text;
//   - a dropped websocket reconnects with backoff and joins again with
//     resume (the server restarts ICE) within the grace period;
//   - practitioners also see the waiting room, admit, remove and end.
//
// Texts come from the page's JSON element (#visit-config), in the user's
// language. window.viddaVisit exposes the state to tests.
(function () {
  'use strict';
  var root = document.getElementById('visit');
  var cfgEl = document.getElementById('visit-config');
  if (!root || !cfgEl) {
    return;
  }
  var cfg = JSON.parse(cfgEl.textContent);
  var T = cfg.texts || {};
  var isStaff = cfg.role === 'practitioner';
  var csrfMeta = document.querySelector('meta[name="csrf-token"]');
  var csrf = csrfMeta ? csrfMeta.getAttribute('content') : '';
  var $ = function (id) { return document.getElementById(id); };
  var GRACE_MS = 30000; // signaling.Config.Grace: how long the server keeps our place

  var v = {
    pc: null, ws: null, token: '', local: null, state: 'check', self: cfg.self,
    audioMuted: false, cameraOff: false, audioOnly: false, weak: false,
    events: [], marks: {}, participants: {}, waiting: []
  };
  window.viddaVisit = v;

  var mark = function (name) {
    if (!v.marks[name]) {
      v.marks[name] = Date.now();
    }
  };
  var logEvent = function (type, detail) {
    v.events.push({ type: type, detail: detail || null, t: Date.now() });
    if (v.events.length > 500) {
      v.events.shift();
    }
  };
  var status = function (text) {
    $('visit-status').textContent = text;
  };
  var notice = function (text) {
    var n = $('visit-notice');
    n.textContent = text || '';
    n.hidden = !text;
  };
  var show = function (state) {
    v.state = state;
    root.setAttribute('data-state', state);
    $('check').hidden = state !== 'check';
    $('waiting-room').hidden = state !== 'waiting';
    $('call').hidden = state !== 'in-visit' && state !== 'reconnecting';
    $('done').hidden = state !== 'done';
    if ($('staff')) {
      $('staff').hidden = !(state === 'in-visit' || state === 'reconnecting' || state === 'waiting');
    }
  };
  var nameOf = function (ref, kind) {
    if (cfg.names && cfg.names[ref]) {
      return cfg.names[ref];
    }
    kind = kind || (ref.indexOf('Patient/') === 0 ? 'patient' : ref.indexOf('Practitioner/') === 0 ? 'practitioner' : 'other');
    return T['kind.' + kind] || ref;
  };

  // --- The camera and microphone check -----------------------------------

  var meterStop = null;
  var startMeter = function (stream) {
    var Ctx = window.AudioContext || window.webkitAudioContext;
    if (!Ctx || stream.getAudioTracks().length === 0) {
      return;
    }
    var ac = new Ctx();
    var src = ac.createMediaStreamSource(stream);
    var an = ac.createAnalyser();
    an.fftSize = 512;
    src.connect(an);
    var buf = new Uint8Array(an.fftSize);
    var heard = false;
    var timer = setInterval(function () {
      an.getByteTimeDomainData(buf);
      var peak = 0;
      for (var i = 0; i < buf.length; i++) {
        peak = Math.max(peak, Math.abs(buf[i] - 128));
      }
      var level = Math.min(1, peak / 64);
      $('meter-bar').style.width = Math.round(level * 100) + '%';
      if (level > 0.05 && !heard) {
        heard = true;
        $('check-result').textContent = T.hearYou;
        v.heard = true;
      }
    }, 100);
    meterStop = function () {
      clearInterval(timer);
      ac.close();
    };
  };

  var getMedia = async function () {
    var video = { width: { ideal: 640 }, height: { ideal: 480 }, frameRate: { ideal: 30 } };
    try {
      return await navigator.mediaDevices.getUserMedia({ audio: true, video: video });
    } catch (err) {
      logEvent('getUserMedia', String(err && err.name));
      if (err && (err.name === 'NotAllowedError' || err.name === 'SecurityError')) {
        notice(T.blocked);
      }
    }
    try { // no camera (or it is blocked): sound alone still makes a visit
      var audio = await navigator.mediaDevices.getUserMedia({ audio: true });
      $('check-result').textContent = T.noCamera;
      return audio;
    } catch (err) {
      logEvent('getUserMedia', String(err && err.name));
      notice(T.blocked);
      $('check-result').textContent = T.noMic;
      return null;
    }
  };

  var check = async function () {
    status(T.checking);
    if (!navigator.mediaDevices || !window.RTCPeerConnection) {
      notice(T.failed);
      return;
    }
    v.local = await getMedia();
    if (v.local) {
      $('preview').srcObject = v.local;
      $('self-view').srcObject = v.local;
      startMeter(v.local);
      if (!$('check-result').textContent) {
        $('check-result').textContent = T.checkOK;
      }
    }
    status(T.checkOK);
    $('join-btn').disabled = false;
    mark('ready');
  };

  // --- Signaling -----------------------------------------------------------

  var send = function (msg) {
    msg.v = 1;
    if (v.ws && v.ws.readyState === WebSocket.OPEN) {
      v.ws.send(JSON.stringify(msg));
      return true;
    }
    return false;
  };

  var fetchToken = async function () {
    var resp = await fetch('/video/visits/' + encodeURIComponent(cfg.appointment) + '/join', {
      method: 'POST', credentials: 'same-origin', cache: 'no-store',
      headers: { 'X-CSRF-Token': csrf, 'Accept': 'application/json' }
    });
    if (!resp.ok) {
      throw new Error('join: HTTP ' + resp.status);
    }
    return resp.json();
  };

  // socketURL is the websocket on this page's own origin: the path and
  // query the server gave, so a proxy in front keeps working.
  var socketURL = function (given) {
    var u = new URL(given, location.href);
    return (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + u.pathname + u.search;
  };

  var reconnect = { attempts: 0, since: 0, timer: null };
  var closing = false; // we left, were removed, or the visit ended

  var connect = function (wsURL, resume) {
    var ws = new WebSocket(wsURL);
    v.ws = ws;
    v.resuming = !!resume;
    ws.onopen = function () {
      logEvent('ws-open', { resume: resume });
      ws.send(JSON.stringify({ v: 1, type: 'join', token: v.token, resume: resume || undefined }));
    };
    ws.onmessage = function (e) {
      var msg;
      try {
        msg = JSON.parse(e.data);
      } catch (err) {
        return;
      }
      handle(msg).catch(function (err) {
        logEvent('error', String(err));
      });
    };
    ws.onclose = function (e) {
      logEvent('ws-close', { code: e.code });
      if (v.ws !== ws) {
        return;
      }
      v.ws = null;
      if (closing) {
        return;
      }
      switch (e.code) {
      case 1000: case 4010: case 4003: case 4001: case 4004: case 4009: case 4011: case 4029:
        finish(e.code === 4010 ? T.removed : e.code === 1000 ? T.ended : T.failed);
        return;
      }
      scheduleReconnect(wsURL);
    };
  };

  var scheduleReconnect = function (wsURL) {
    if (!reconnect.since) {
      reconnect.since = Date.now();
    }
    if (Date.now() - reconnect.since > GRACE_MS) {
      finish(T.lost);
      return;
    }
    show('reconnecting');
    status(T.reconnecting);
    var delay = Math.min(8000, 500 * Math.pow(2, reconnect.attempts)) * (0.75 + Math.random() * 0.5);
    reconnect.attempts++;
    reconnect.timer = setTimeout(function () {
      // resume: the peer connection survived, only the websocket dropped.
      var resume = !!(v.pc && v.pc.connectionState !== 'closed');
      connect(wsURL, resume);
    }, delay);
  };

  var join = async function () {
    $('join-btn').disabled = true;
    status(T.joining);
    mark('join');
    try {
      var grant = await fetchToken();
      v.token = grant.token;
      v.iceServers = grant.iceServers || [];
      v.self = grant.participant || v.self;
      connect(socketURL(grant.ws), false);
    } catch (err) {
      logEvent('error', String(err));
      notice(T.failed);
      $('join-btn').disabled = false;
    }
  };

  // --- The peer connection ---------------------------------------------------

  var makingOffer = false;
  var videoSender = null;
  var audioSender = null;

  var addLocalTracks = function (pc) {
    var stream = v.local;
    if (!stream) {
      return;
    }
    stream.getAudioTracks().forEach(function (t) {
      audioSender = pc.addTransceiver(t, { direction: 'sendonly', streams: [stream] }).sender;
    });
    stream.getVideoTracks().forEach(function (t) {
      var tr;
      try {
        tr = pc.addTransceiver(t, {
          direction: 'sendonly', streams: [stream], sendEncodings: [
            { rid: 'q', scaleResolutionDownBy: 4, maxBitrate: 150000 },
            { rid: 'h', scaleResolutionDownBy: 2, maxBitrate: 500000 },
            { rid: 'f', maxBitrate: 1200000 }
          ]
        });
        v.simulcast = true;
      } catch (err) { // no simulcast here: one encoding
        tr = pc.addTransceiver(t, { direction: 'sendonly', streams: [stream] });
        v.simulcast = false;
      }
      videoSender = tr.sender;
    });
  };

  var newPeer = function (iceServers) {
    if (v.pc) {
      v.pc.close();
    }
    clearTiles();
    var pc = new RTCPeerConnection({ iceServers: iceServers || [] });
    v.pc = pc;
    makingOffer = false;
    pc.onnegotiationneeded = async function () {
      try {
        makingOffer = true;
        await pc.setLocalDescription();
        send({ type: 'offer', description: { type: pc.localDescription.type, sdp: pc.localDescription.sdp } });
        mark('offer');
      } catch (err) {
        logEvent('error', 'offer: ' + err);
      } finally {
        makingOffer = false;
      }
    };
    pc.onicecandidate = function (e) {
      if (!e.candidate || !e.candidate.candidate) {
        return;
      }
      var c = e.candidate;
      send({ type: 'candidate', candidate: {
        candidate: c.candidate, sdpMid: c.sdpMid, sdpMLineIndex: c.sdpMLineIndex, usernameFragment: c.usernameFragment || undefined
      } });
    };
    pc.onconnectionstatechange = function () {
      logEvent('pc', pc.connectionState);
      if (pc.connectionState === 'connected') {
        mark('connected');
        // The server judges every link good until it sees otherwise, and
        // sends "quality" only on changes.
        if (!$('quality').getAttribute('data-quality')) {
          setQuality('good');
        }
      }
    };
    pc.ontrack = function (e) {
      var stream = e.streams[0];
      if (!stream) {
        return;
      }
      addTile(stream, e.track);
      stream.onremovetrack = function () {
        if (stream.getTracks().length === 0) {
          removeTile(stream.id);
        }
      };
      e.track.onended = function () {
        if (stream.getTracks().every(function (t) { return t.readyState === 'ended'; })) {
          removeTile(stream.id);
        }
      };
    };
    addLocalTracks(pc);
    if (v.cameraOff || v.audioOnly) {
      stopVideo();
    }
    return pc;
  };

  var onDescription = async function (d) {
    var pc = v.pc;
    if (!pc) {
      return;
    }
    // Polite: an offer colliding with our own rolls ours back
    // (setRemoteDescription does the rollback implicitly).
    var collision = d.type === 'offer' && (makingOffer || pc.signalingState !== 'stable');
    if (collision) {
      logEvent('glare');
      if (pc.signalingState === 'have-local-offer') {
        await pc.setLocalDescription({ type: 'rollback' });
      }
    }
    await pc.setRemoteDescription(d);
    if (d.type === 'offer') {
      await pc.setLocalDescription();
      send({ type: 'answer', description: { type: pc.localDescription.type, sdp: pc.localDescription.sdp } });
    }
  };

  var onCandidate = async function (c) {
    if (!v.pc || !c || !c.candidate) {
      return;
    }
    try {
      await v.pc.addIceCandidate(c);
    } catch (err) {
      logEvent('candidate', String(err)); // one from a description we rolled back
    }
  };

  // --- Tiles -------------------------------------------------------------------

  var tiles = {}; // stream id → element

  var participantOf = function (streamID) {
    try {
      return decodeURIComponent(streamID);
    } catch (err) {
      return streamID;
    }
  };

  var addTile = function (stream, track) {
    var el = tiles[stream.id];
    if (!el) {
      var ref = participantOf(stream.id);
      el = document.createElement('figure');
      el.className = 'tile';
      el.setAttribute('data-participant', ref);
      el.setAttribute('data-stream', stream.id);
      var vid = document.createElement('video');
      vid.autoplay = true;
      vid.playsInline = true;
      vid.srcObject = stream;
      var cap = document.createElement('figcaption');
      var who = document.createElement('span');
      who.className = 'who';
      var info = v.participants[ref];
      who.textContent = nameOf(ref, info && info.kind);
      var state = document.createElement('span');
      state.className = 'tile-state';
      cap.appendChild(who);
      cap.appendChild(state);
      el.appendChild(vid);
      el.appendChild(cap);
      $('tiles').appendChild(el);
      tiles[stream.id] = el;
      vid.addEventListener('loadeddata', function () { mark('remoteVideo'); });
    }
    if (track && track.kind === 'video') {
      mark('remoteTrack');
    }
    updateTile(participantOf(stream.id));
    $('alone').hidden = true;
  };

  var removeTile = function (streamID) {
    var el = tiles[streamID];
    if (el) {
      el.remove();
      delete tiles[streamID];
    }
    $('alone').hidden = Object.keys(tiles).length > 0;
  };

  var clearTiles = function () {
    Object.keys(tiles).forEach(removeTile);
  };

  var updateTile = function (ref) {
    var el = tiles[encodeURIComponent(ref)] || document.querySelector('.tile[data-participant="' + CSS.escape(ref) + '"]');
    if (!el) {
      return;
    }
    var p = v.participants[ref] || {};
    var bits = [];
    if (p.audioMuted) {
      bits.push(T.muted);
    }
    if (p.videoMuted || p.audioOnly) {
      bits.push(T.videoPaused);
    }
    if (p.quality) {
      bits.push(T['quality.' + p.quality]);
    }
    el.querySelector('.tile-state').textContent = bits.length ? ' · ' + bits.join(' · ') : '';
    el.classList.toggle('paused', !!(p.videoMuted || p.audioOnly));
  };

  var removeParticipant = function (ref) {
    delete v.participants[ref];
    Object.keys(tiles).forEach(function (id) {
      if (participantOf(id) === ref) {
        removeTile(id);
      }
    });
  };

  // --- The waiting room (practitioners) --------------------------------------

  var renderWaiting = function () {
    var list = $('waiting-list');
    if (!list) {
      return;
    }
    list.textContent = '';
    v.waiting.forEach(function (w) {
      var li = document.createElement('li');
      li.setAttribute('data-participant', w.id);
      var name = document.createElement('span');
      name.className = 'who';
      name.textContent = nameOf(w.id, w.kind);
      var admit = document.createElement('button');
      admit.type = 'button';
      admit.className = 'admit';
      admit.textContent = T.admit;
      admit.addEventListener('click', function () {
        admit.disabled = true;
        send({ type: 'admit', participant: w.id });
      });
      var remove = document.createElement('button');
      remove.type = 'button';
      remove.className = 'secondary remove';
      remove.textContent = T.remove;
      remove.addEventListener('click', function () {
        remove.disabled = true;
        send({ type: 'remove', participant: w.id });
      });
      li.appendChild(name);
      li.appendChild(admit);
      li.appendChild(remove);
      list.appendChild(li);
    });
    $('nobody-waiting').hidden = v.waiting.length > 0;
  };

  var loadState = async function () {
    if (!isStaff) {
      return;
    }
    try {
      var resp = await fetch('/video/visits/' + encodeURIComponent(cfg.appointment), {
        credentials: 'same-origin', cache: 'no-store', headers: { 'Accept': 'application/json' }
      });
      if (resp.ok) {
        var st = await resp.json();
        v.waiting = st.waiting || [];
        renderWaiting();
      }
    } catch (err) {
      logEvent('error', String(err));
    }
  };

  // --- Messages ------------------------------------------------------------------

  var setQuality = function (q) {
    var el = $('quality');
    el.setAttribute('data-quality', q);
    el.textContent = T['quality.' + q] || q;
  };

  var enterVisit = function () {
    show('in-visit');
    status(T.inVisit);
  };

  var admittedSelf = function (msg) {
    mark('admitted');
    (msg.participants || []).forEach(function (p) {
      if (p.id !== v.self) {
        v.participants[p.id] = p;
      }
    });
    enterVisit();
  };

  var handle = async function (msg) {
    logEvent(msg.type, msg.type === 'offer' || msg.type === 'answer' || msg.type === 'candidate' ? null : msg);
    switch (msg.type) {
    case 'joined':
      mark('joined');
      var resumed = reconnect.since > 0;
      reconnect.attempts = 0;
      reconnect.since = 0;
      if (msg.self && msg.self.id) {
        v.self = msg.self.id;
        if (msg.self.quality) {
          setQuality(msg.self.quality);
        }
      }
      // Resuming, the server keeps our peer and restarts ICE with an offer
      // of its own; otherwise it starts a new one and waits for our offer.
      if (!v.resuming || !v.pc || v.pc.connectionState === 'closed') {
        newPeer(msg.iceServers || v.iceServers);
      }
      v.resuming = false;
      if (msg.waiting) {
        v.waiting = msg.waiting;
        renderWaiting();
      }
      if (msg.self && msg.self.state === 'waiting') {
        show('waiting');
        status(T.waiting);
      } else {
        admittedSelf(msg);
        if (resumed) {
          status(T.reconnected);
        }
      }
      return;
    case 'waiting':
      if (msg.waiting || isStaff && !msg.self) {
        v.waiting = msg.waiting || [];
        renderWaiting();
      }
      if (msg.self && msg.self.id === v.self) {
        show('waiting');
        status(T.waiting);
      }
      return;
    case 'admitted':
      if (msg.participant === v.self) {
        admittedSelf(msg);
      } else if (msg.participant) {
        mark('otherAdmitted');
        v.participants[msg.participant] = msg.info || { id: msg.participant };
        v.waiting = v.waiting.filter(function (w) { return w.id !== msg.participant; });
        renderWaiting();
        status(nameOf(msg.participant, msg.info && msg.info.kind) + ' ' + T.joinedVisit);
      }
      return;
    case 'left':
      v.waiting = v.waiting.filter(function (w) { return w.id !== msg.participant; });
      renderWaiting();
      if (msg.reason === 'disconnected') {
        var p = v.participants[msg.participant];
        if (p) {
          p.quality = 'lost';
          updateTile(msg.participant);
        }
        return;
      }
      if (v.participants[msg.participant]) {
        status(nameOf(msg.participant) + ' ' + T.leftVisit);
      }
      removeParticipant(msg.participant);
      return;
    case 'removed':
      finish(T.removed);
      return;
    case 'ended':
      finish(T.ended);
      return;
    case 'offer':
    case 'answer':
      await onDescription(msg.description);
      return;
    case 'candidate':
      await onCandidate(msg.candidate);
      return;
    case 'mute':
      if (v.participants[msg.participant]) {
        if (msg.audio !== undefined) {
          v.participants[msg.participant].audioMuted = msg.audio;
        }
        if (msg.video !== undefined) {
          v.participants[msg.participant].videoMuted = msg.video;
        }
        updateTile(msg.participant);
      }
      return;
    case 'quality':
      if (msg.participant === v.self) {
        setQuality(msg.quality);
      } else if (v.participants[msg.participant]) {
        v.participants[msg.participant].quality = msg.quality;
        updateTile(msg.participant);
      }
      return;
    case 'audio-only':
      onAudioOnly(msg);
      return;
    case 'ping':
      send({ type: 'pong' });
      return;
    case 'error':
      if (msg.code === 'not-joinable' || msg.code === 'forbidden' || msg.code === 'not-found') {
        notice(T.failed);
      }
      return;
    }
  };

  var onAudioOnly = function (msg) {
    if (msg.participant === v.self) {
      if (msg.reason === 'bandwidth' || msg.reason === 'recovered') {
        v.weak = !!msg.on;
        notice(msg.on ? T.weak : '');
        if (!msg.on) {
          status(T.videoBack);
        }
        root.classList.toggle('weak', v.weak);
      }
      return;
    }
    if (v.participants[msg.participant]) {
      v.participants[msg.participant].audioOnly = !!msg.on;
      updateTile(msg.participant);
    }
  };

  // --- Controls --------------------------------------------------------------

  var stopVideo = function () {
    if (videoSender && videoSender.track) {
      videoSender.replaceTrack(null);
    }
  };

  var startVideo = function () {
    var t = v.local && v.local.getVideoTracks()[0];
    if (videoSender && t && !v.cameraOff && !v.audioOnly) {
      videoSender.replaceTrack(t);
    }
  };

  var toggle = function (btn, on, onText, offText) {
    btn.setAttribute('aria-pressed', on ? 'true' : 'false');
    btn.textContent = on ? offText : onText;
  };

  $('mute-btn').addEventListener('click', function () {
    v.audioMuted = !v.audioMuted;
    if (v.local) {
      v.local.getAudioTracks().forEach(function (t) { t.enabled = !v.audioMuted; });
    }
    send({ type: 'mute', audio: v.audioMuted });
    toggle($('mute-btn'), v.audioMuted, T.mute, T.unmute);
  });

  $('camera-btn').addEventListener('click', function () {
    v.cameraOff = !v.cameraOff;
    if (v.cameraOff) {
      stopVideo();
    } else {
      startVideo();
    }
    $('self-view').classList.toggle('off', v.cameraOff);
    send({ type: 'mute', video: v.cameraOff });
    toggle($('camera-btn'), v.cameraOff, T.cameraOff, T.cameraOn);
  });

  $('audioonly-btn').addEventListener('click', function () {
    v.audioOnly = !v.audioOnly;
    if (v.audioOnly) {
      stopVideo();
    } else {
      startVideo();
    }
    send({ type: 'audio-only', on: v.audioOnly });
    toggle($('audioonly-btn'), v.audioOnly, T.audioOnlyOn, T.audioOnlyOff);
  });

  var finish = function (text) {
    closing = true;
    clearTimeout(reconnect.timer);
    if (v.ws) {
      v.ws.close(1000);
      v.ws = null;
    }
    if (v.pc) {
      v.pc.close();
    }
    clearTiles();
    if (v.local) {
      v.local.getTracks().forEach(function (t) { t.stop(); });
    }
    if (meterStop) {
      meterStop();
      meterStop = null;
    }
    notice('');
    $('done-text').textContent = text;
    status(text);
    show('done');
    mark('done');
  };

  $('leave-btn').addEventListener('click', function () {
    send({ type: 'leave' });
    finish(T.left);
  });

  if ($('end-btn')) {
    $('end-btn').addEventListener('click', function () {
      send({ type: 'end' });
    });
  }

  $('join-btn').addEventListener('click', join);

  window.addEventListener('pagehide', function () {
    if (!closing && v.ws) {
      send({ type: 'leave' });
    }
  });

  show('check');
  check();
  loadState();
})();
