// Keyboard-first blind voting (templates/arena/vote.html). The page works without it: every action is a plain form
// button; this maps keys onto those buttons, measures the time spent on the comparison and stops double submits.
"use strict";

(function () {
  var form = document.getElementById("vote-form");
  var help = document.getElementById("help-dialog");
  var started = Date.now();
  var sent = false;
  var KEYS = { "1": "btn-a", a: "btn-a", "2": "btn-b", b: "btn-b", "3": "btn-tie", t: "btn-tie",
               "4": "btn-both_bad", x: "btn-both_bad", s: "btn-skip" };

  function typing(el) {
    return el && (el.tagName === "TEXTAREA" || (el.tagName === "INPUT" && el.type === "text") || el.isContentEditable);
  }

  function press(id) {
    var el = document.getElementById(id);
    if (!el || sent) return;
    el.click();
  }

  function toggleHelp() {
    if (!help) return;
    if (help.open) help.close(); else help.showModal();
  }

  if (form) {
    form.addEventListener("submit", function (ev) {
      if (sent) { ev.preventDefault(); return; }
      sent = true;
      document.getElementById("seconds").value = ((Date.now() - started) / 1000).toFixed(3);
      form.classList.add("sending");
    });
  }

  document.addEventListener("keydown", function (ev) {
    if (ev.defaultPrevented || ev.altKey || ev.metaKey) return;
    var target = ev.target;
    if (typing(target)) {
      if (ev.key === "Escape") { target.blur(); ev.preventDefault(); }
      else if (ev.ctrlKey && /^[1-4]$/.test(ev.key)) { press(KEYS[ev.key]); ev.preventDefault(); }
      return;
    }
    if (ev.ctrlKey) return;
    if (ev.key === "?") { toggleHelp(); ev.preventDefault(); return; }
    if (help && help.open) return;
    if (target && target.type === "radio" && ev.key === "Escape") { target.blur(); ev.preventDefault(); return; }
    if (ev.key === "r") {
      var reason = document.getElementById("reason");
      if (reason) { reason.focus(); ev.preventDefault(); }
      return;
    }
    if (ev.key === "c") {
      var first = document.querySelector("#criteria input[type=radio]:checked") || document.querySelector("#criteria input[type=radio]");
      if (first) { first.focus(); ev.preventDefault(); }
      return;
    }
    var id = KEYS[ev.key];
    if (!id) return;
    press(id);
    ev.preventDefault();
  });
})();
