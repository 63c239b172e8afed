// Vidda's live worklist: when the server's event stream (/app/events)
// says a Task changed, fetch the list again (/app/worklist) and swap it
// in, without reloading the page. Without this script (or without
// EventSource) the page still works: reload it to see new tasks.
(function () {
  'use strict';
  var status = document.getElementById('live-status');
  var list = document.getElementById('worklist');
  if (!list || !window.EventSource || !window.fetch || !window.DOMParser) {
    return;
  }
  var say = function (key) {
    if (status && status.getAttribute('data-' + key)) {
      status.textContent = status.getAttribute('data-' + key);
    }
  };
  var busy = false;
  var again = false;
  var refresh = function () {
    if (busy) {
      again = true; // one more fetch once this one is done
      return;
    }
    busy = true;
    fetch(list.getAttribute('data-fragment'), {
      credentials: 'same-origin',
      headers: { 'Accept': 'text/html' },
      cache: 'no-store'
    }).then(function (resp) {
      if (resp.status === 401 || resp.status === 403) {
        stop();
        throw new Error('signed out');
      }
      if (!resp.ok) {
        throw new Error('HTTP ' + resp.status);
      }
      return resp.text();
    }).then(function (html) {
      var doc = new DOMParser().parseFromString(html, 'text/html');
      var fresh = doc.getElementById('worklist');
      if (fresh) {
        var current = document.getElementById('worklist');
        current.replaceWith(document.importNode(fresh, true));
        list = document.getElementById('worklist');
        say('updated');
      }
    }).catch(function () {
      // The next event (or a reload) tries again.
    }).finally(function () {
      busy = false;
      if (again) {
        again = false;
        refresh();
      }
    });
  };
  var source = new EventSource('/app/events');
  var stop = function () {
    source.close();
    say('ended');
  };
  source.addEventListener('open', function () {
    say('live');
  });
  source.addEventListener('error', function () {
    if (source.readyState === EventSource.CLOSED) {
      stop();
    } else {
      say('off');
    }
  });
  source.addEventListener('worklist', refresh);
  source.addEventListener('session-ended', stop);
})();
