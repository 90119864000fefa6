/* Inlined into every gallery page. The ranked view is plain HTML; this adds: a note where a video cannot
   be played, table sorting, the prompt filter, and playing the videos in view. Text is only ever set
   through textContent, never parsed as HTML. */
(function () {
  "use strict";

  var REASONS = {
    1: "loading was stopped",
    2: "the file could not be loaded (moved or missing?)",
    3: "the file could not be decoded (damaged?)",
    4: "this browser does not support the file's format or codec"
  };

  function markUnplayable(video, reason) {
    var card = video.closest(".media");
    if (!card || card.getAttribute("data-unplayable")) { return; }
    card.setAttribute("data-unplayable", "true");
    var note = document.createElement("p");
    note.className = "unplayable";
    note.setAttribute("role", "note");
    note.appendChild(document.createTextNode("This browser cannot play this video: " + reason + ". "));
    var link = document.createElement("a");
    link.href = video.getAttribute("src");
    link.textContent = "Open the file";
    note.appendChild(link);
    note.appendChild(document.createTextNode(" in a video player (it is H.264 mp4 when this project wrote it)."));
    if (video.getAttribute("poster")) {
      var still = document.createElement("img");
      still.src = video.getAttribute("poster");
      still.alt = "first frame";
      card.insertBefore(still, video);
    }
    video.hidden = true;
    video.removeAttribute("src");
    card.appendChild(note);
  }

  function checkVideo(video) {
    if (video.error) {
      markUnplayable(video, REASONS[video.error.code] || "error " + video.error.code);
    } else if (video.readyState >= 1 && !video.videoWidth) {
      markUnplayable(video, "the file has no picture track this browser can decode");
    }
  }

  // Registered before the body is parsed: a video may fail before the page has finished loading.
  document.addEventListener("error", function (event) {
    if (event.target && event.target.tagName === "VIDEO") { checkVideo(event.target); }
  }, true);
  document.addEventListener("loadedmetadata", function (event) {
    if (event.target && event.target.tagName === "VIDEO") { checkVideo(event.target); }
  }, true);

  function sortValue(cell, numeric) {
    if (!numeric) { return cell.textContent.toLowerCase(); }
    var raw = cell.getAttribute("data-sort");
    return raw === null || raw === "" ? null : parseFloat(raw);
  }

  function setUpSorting(table) {
    var body = table.tBodies[0];
    var headers = Array.prototype.slice.call(table.tHead.rows[0].cells);
    headers.forEach(function (th, column) {
      var button = document.createElement("button");
      button.type = "button";
      button.textContent = th.textContent;
      button.title = "sort by " + th.textContent;
      th.textContent = "";
      th.appendChild(button);
      button.addEventListener("click", function () {
        var current = th.getAttribute("aria-sort");
        var direction = current === "ascending" ? "descending" : current === "descending" ? "ascending"
          : th.getAttribute("data-first") || "ascending";
        headers.forEach(function (other) { other.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", direction);
        var numeric = th.classList.contains("num");
        var sign = direction === "ascending" ? 1 : -1;
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = sortValue(a.cells[column], numeric), y = sortValue(b.cells[column], numeric);
          if (x === null || y === null || x === y) {
            if (x !== y) { return x === null ? 1 : -1; }  // empty cells last, whatever the direction
            return a.getAttribute("data-position") - b.getAttribute("data-position");
          }
          return (x < y ? -1 : 1) * sign;
        });
        rows.forEach(function (row) { body.appendChild(row); });
      });
    });
  }

  function setUpFilter(input) {
    var groups = Array.prototype.slice.call(document.querySelectorAll("section.prompt-group"));
    var rows = Array.prototype.slice.call(document.querySelectorAll("#candidates-table tbody tr"));
    var count = document.getElementById("filter-count");
    function apply() {
      var query = input.value.trim().toLowerCase();
      var shown = 0;
      groups.forEach(function (group) {
        group.hidden = query !== "" && group.getAttribute("data-prompt").toLowerCase().indexOf(query) < 0;
        if (!group.hidden) { shown += 1; }
      });
      rows.forEach(function (row) {
        row.hidden = query !== "" && row.getAttribute("data-prompt").toLowerCase().indexOf(query) < 0;
      });
      count.textContent = query === "" ? "" : shown + " of " + groups.length + " prompt groups on this page shown";
    }
    input.addEventListener("input", apply);
    apply();
  }

  function setUpAutoplay(videos) {
    var reduced = window.matchMedia && window.matchMedia("(prefers-reduced-motion: reduce)").matches;
    if (reduced || !("IntersectionObserver" in window)) { return; }
    var observer = new IntersectionObserver(function (entries) {
      entries.forEach(function (entry) {
        var video = entry.target;
        if (entry.isIntersecting && video.getAttribute("src")) {
          var playing = video.play();
          if (playing && playing.catch) { playing.catch(function () {}); }
        } else {
          video.pause();
        }
      });
    }, { rootMargin: "100px" });
    videos.forEach(function (video) { observer.observe(video); });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var videos = Array.prototype.slice.call(document.querySelectorAll("video"));
    videos.forEach(checkVideo);
    var table = document.getElementById("candidates-table");
    if (table) { setUpSorting(table); }
    var input = document.getElementById("prompt-filter");
    if (input) { setUpFilter(input); }
    Array.prototype.forEach.call(document.querySelectorAll("[data-needs-script]"), function (element) {
      element.hidden = false;
    });
    setUpAutoplay(videos);
  });
})();
