// Keyboard-first curation (templates/datasets/curation_annotate.html). The page works without it: every action
// is a plain form button or link; this only maps keys onto them and measures the time spent on the example.
"use strict";

(function () {
  var form = document.getElementById("curation-form");
  var help = document.getElementById("help-dialog");
  var started = Date.now();

  function typing(el) {
    return el && (el.tagName === "TEXTAREA" || (el.tagName === "INPUT" && el.type === "text") || el.isContentEditable);
  }

  function click(id) {
    var el = document.getElementById(id);
    if (el) el.click();
  }

  function openFix() {
    var panel = document.getElementById("fix-panel");
    if (!panel) return;
    panel.open = true;
    var box = document.getElementById("fixed_reference") || document.getElementById("fixed_prompt");
    if (box) { box.focus(); box.setSelectionRange(box.value.length, box.value.length); }
  }

  function toggleHelp() {
    if (!help) return;
    if (help.open) help.close(); else help.showModal();
  }

  if (form) {
    form.addEventListener("submit", function () {
      document.getElementById("seconds").value = ((Date.now() - started) / 1000).toFixed(3);
    });
  }

  document.addEventListener("keydown", function (ev) {
    if (ev.defaultPrevented || ev.altKey || ev.metaKey && ev.key !== "Enter") return;
    var target = ev.target;
    if (typing(target)) {
      if (ev.key === "Escape") { target.blur(); ev.preventDefault(); }
      else if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey) && target.tagName === "TEXTAREA") { click("btn-fix"); ev.preventDefault(); }
      else if (ev.key === "Enter" && target.tagName === "INPUT") {
        // Enter in the comment box submits like Enter elsewhere (fix when editing, else accept).
        var panel = document.getElementById("fix-panel");
        click(panel && panel.open ? "btn-fix" : "btn-accept"); ev.preventDefault();
      }
      return;
    }
    if (ev.ctrlKey) return;
    if (ev.key === "?") { toggleHelp(); ev.preventDefault(); return; }
    if (help && help.open) return;
    var link;
    switch (ev.key) {
      case "a": click("btn-accept"); break;
      case "r": click("btn-reject"); break;
      case "e": openFix(); break;
      case "j": case "k":
        link = document.querySelector('[data-key="' + ev.key + '"]');
        if (link) window.location.href = link.href;
        break;
      case "Enter":
        if (target && (target.tagName === "BUTTON" || target.tagName === "A" || target.tagName === "SUMMARY")) return;
        var fixPanel = document.getElementById("fix-panel");
        click(fixPanel && fixPanel.open ? "btn-fix" : "btn-accept");
        break;
      default:
        if (/^[1-9]$/.test(ev.key)) {
          var radio = document.querySelector('input[name="label"][data-digit="' + ev.key + '"]');
          if (radio) radio.checked = true; else return;
        } else {
          return;
        }
    }
    ev.preventDefault();
  });
})();
