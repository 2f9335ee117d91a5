// Keyboard-first rating (templates/reviews/rate.html, adjudicate.html). The page works without it: every control
// is a plain form input, button or link. This maps keys onto them, highlights the criterion the digits apply to,
// and measures the time the page was actually in front of the rater.
"use strict";

(function () {
  var form = document.getElementById("rating-form");
  if (!form) return;
  var help = document.getElementById("help-dialog");
  var criteria = Array.prototype.slice.call(form.querySelectorAll("fieldset.criterion"));
  var active = 0;
  var submitting = false;

  // Time on item: only while the tab is visible.
  var visibleMs = 0, since = document.visibilityState === "visible" ? Date.now() : null;
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "visible") { since = Date.now(); }
    else if (since !== null) { visibleMs += Date.now() - since; since = null; }
  });
  function secondsOnItem() {
    var ms = visibleMs + (since !== null ? Date.now() - since : 0);
    return (ms / 1000).toFixed(3);  // ms precision: a fast keyboard vote is not recorded as 0 s
  }

  function typing(el) {
    return el && (el.tagName === "TEXTAREA" || el.tagName === "SELECT" ||
      (el.tagName === "INPUT" && ["text", "number", "search"].indexOf(el.type) >= 0) || el.isContentEditable);
  }

  function setActive(i, scroll) {
    if (!criteria.length) return;
    active = Math.max(0, Math.min(criteria.length - 1, i));
    criteria.forEach(function (f, n) { f.classList.toggle("active", n === active); });
    if (scroll) criteria[active].scrollIntoView({ block: "nearest", behavior: "smooth" });
  }

  function answered(f) {
    if (f.dataset.scale === "text") {
      var t = f.querySelector("textarea");
      return t && t.value.trim() !== "";
    }
    return f.querySelector("input:checked") !== null;
  }

  function firstMissing() {
    for (var i = 0; i < criteria.length; i++) {
      if (criteria[i].dataset.required === "1" && !answered(criteria[i])) return i;
    }
    return -1;
  }

  function showMissing(i) {
    setActive(i, true);
    var f = criteria[i];
    var note = f.querySelector(".field-error.client");
    if (!note) {
      note = document.createElement("p");
      note.className = "field-error client";
      note.setAttribute("role", "alert");
      f.appendChild(note);
    }
    note.textContent = "Pick a value for this criterion first.";
    f.classList.add("has-error");
  }

  function submit() {
    if (submitting) return;
    var missing = firstMissing();
    if (missing >= 0) { showMissing(missing); return; }
    submitting = true;
    if (typeof form.requestSubmit === "function") form.requestSubmit(); else form.submit();
  }

  form.addEventListener("submit", function () {
    var s = document.getElementById("seconds_on_item");
    if (s) s.value = secondsOnItem();
    submitting = true;
    var b = document.getElementById("submit-button");
    if (b) b.disabled = true; // a second click would be harmless (same submission token), but confusing
  });

  criteria.forEach(function (f, n) {
    f.addEventListener("click", function () { setActive(n, false); });
    f.addEventListener("change", function () {
      f.classList.remove("has-error");
      var note = f.querySelector(".field-error.client");
      if (note) note.remove();
    });
  });

  function pick(key) {
    var f = criteria[active];
    if (!f || f.dataset.scale === "text") return false;
    var input = f.querySelector('input[data-key="' + key + '"]');
    if (!input) return false;
    if (input.type === "checkbox") {
      input.checked = !input.checked;
    } else {
      input.checked = true;
      if (active < criteria.length - 1) setActive(active + 1, true);
    }
    input.dispatchEvent(new Event("change", { bubbles: true }));
    return true;
  }

  function openEditor() {
    var panel = document.getElementById("edit-panel");
    var box = document.getElementById("corrected_text");
    if (!panel || !box) return;
    panel.open = true;
    box.focus();
    box.setSelectionRange(box.value.length, box.value.length);
  }

  function focusBox(id) {
    var el = document.getElementById(id);
    if (el) { el.focus(); el.setSelectionRange(el.value.length, el.value.length); }
  }

  function toggleHelp() {
    if (!help) return;
    if (help.open) help.close(); else help.showModal();
  }

  var helpButton = document.getElementById("help-button");
  if (helpButton) helpButton.addEventListener("click", toggleHelp);

  function follow(nav) {
    var link = document.querySelector('[data-nav="' + nav + '"]');
    if (link) window.location.href = link.href;
  }

  document.addEventListener("keydown", function (ev) {
    if (ev.defaultPrevented || ev.altKey || ev.isComposing) return;
    var target = ev.target;
    if (typing(target)) {
      if (ev.key === "Escape") { target.blur(); ev.preventDefault(); }
      else if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) { target.blur(); submit(); ev.preventDefault(); }
      return;
    }
    if (ev.ctrlKey || ev.metaKey) return;
    if (ev.key === "?") { toggleHelp(); ev.preventDefault(); return; }
    if (help && help.open) return;
    switch (ev.key) {
      case "Enter":
        if (target && (target.tagName === "A" || target.tagName === "SUMMARY" ||
            (target.tagName === "BUTTON" && target.id !== "submit-button"))) return;
        submit();
        break;
      case "j": setActive(active + 1, true); break;
      case "k": setActive(active - 1, true); break;
      case "e": openEditor(); break;
      case "c": focusBox("comment"); break;
      case "i":
        var f = criteria[active];
        var t = f && f.querySelector("textarea");
        if (!t) return;
        t.focus();
        break;
      case "s":
        var skip = document.getElementById("skip-button");
        if (!skip) return;
        skip.click();
        break;
      case "h": follow("h"); break;
      case "l": follow("l"); break;
      default:
        if (!/^[0-9]$/.test(ev.key) || !pick(ev.key)) return;
    }
    ev.preventDefault();
  });

  // Start on the first criterion still to answer (all answered when revising: start at the top).
  var start = firstMissing();
  setActive(start >= 0 ? start : 0, false);
  var errorField = form.querySelector(".criterion.has-error");
  if (errorField) setActive(criteria.indexOf(errorField), true);
})();
