// The page's own check of a picked or dropped file, before any of it is sent (ui/checks.py fills
// in the limits). Gradio's upload components send whatever is picked; the photo editor then sends
// its canvas, and a refusal by the server (413) is never reported: the page just waits. So this
// listener sees the file first (capture phase, on window), refuses with one line one that is not an
// image, empty, over the size limit or over the pixel budget, and passes the others on.
(() => {
  const LIMIT_BYTES = __LIMIT_BYTES__;
  const LIMIT_MB = __LIMIT_MB__;
  const MAX_PIXELS = __MAX_PIXELS__;
  const EXTENSIONS = __EXTENSIONS__;
  const TYPES = __TYPES__;
  const FORMATS = __FORMATS__;
  const passed = new WeakSet();  // the events this listener sends on once their files passed

  function quickProblem(file) {
    const dot = file.name.lastIndexOf(".");
    const extension = dot >= 0 ? file.name.slice(dot).toLowerCase() : "";
    if (extension ? !EXTENSIONS.includes(extension) : !TYPES.includes(file.type)) {
      return `${file.name}: not an image file (${FORMATS} only)`;
    }
    if (file.size > LIMIT_BYTES) {
      return `${file.name}: too large (${(file.size / 1048576).toFixed(1)} MB, limit ${LIMIT_MB} MB)`;
    }
    if (file.size === 0) return `${file.name}: empty file`;
    return null;
  }

  // The picture's size as the browser reads it (an <img> not shown is not decoded, only measured).
  function dimensions(file) {
    return new Promise((resolve) => {
      const url = URL.createObjectURL(file);
      const image = new Image();
      image.onload = () => { URL.revokeObjectURL(url); resolve([image.naturalWidth, image.naturalHeight]); };
      image.onerror = () => { URL.revokeObjectURL(url); resolve(null); };
      image.src = url;
    });
  }

  async function problem(files) {
    for (const file of files) {
      const quick = quickProblem(file);
      if (quick) return quick;
      const size = await dimensions(file);
      if (!size) {
        return `${file.name}: this browser cannot open it as an image (JPEG, PNG, WebP, GIF or BMP work everywhere)`;
      }
      const [width, height] = size;
      if (width * height > MAX_PIXELS) {
        return `${file.name}: image too large (${width}×${height} = ${Math.round(width * height / 1e6)} megapixels; ` +
          `at most ${Math.round(MAX_PIXELS / 1e6)} megapixels)`;
      }
    }
    return null;
  }

  function show(message) {
    let banner = document.getElementById("upload-refused");
    if (!banner) {
      banner = document.createElement("div");
      banner.id = "upload-refused";
      banner.setAttribute("role", "alert");
      banner.title = "click to close";
      banner.style.cssText = "position:fixed;top:16px;left:50%;transform:translateX(-50%);z-index:10000;" +
        "max-width:90vw;padding:12px 18px;border-radius:8px;background:#b91c1c;color:#fff;" +
        "font:15px/1.4 system-ui,sans-serif;box-shadow:0 4px 16px rgba(0,0,0,.3);cursor:pointer";
      banner.addEventListener("click", () => banner.remove());
      document.body.appendChild(banner);
    }
    banner.textContent = message;
    clearTimeout(banner.timer);
    banner.timer = setTimeout(() => banner.remove(), 15000);
  }

  // Hold the event, check its files, then refuse them or send an equal event on to the page.
  function hold(event, files, again) {
    if (passed.has(event) || !files.length) return;
    event.stopImmediatePropagation();
    event.preventDefault();  // a dropped file must not open in the tab either
    problem(files).then((refusal) => {
      if (refusal) {
        if (event.target instanceof HTMLInputElement) event.target.value = "";
        show(refusal);
        return;
      }
      document.getElementById("upload-refused")?.remove();
      const next = again();
      passed.add(next);
      event.target.dispatchEvent(next);
    });
  }

  window.addEventListener("change", (event) => {
    const input = event.target;
    if (!(input instanceof HTMLInputElement) || input.type !== "file") return;
    hold(event, Array.from(input.files || []), () => new Event("change", { bubbles: true }));
  }, true);

  window.addEventListener("drop", (event) => {
    const files = Array.from((event.dataTransfer && event.dataTransfer.files) || []);
    hold(event, files, () => {
      const transfer = new DataTransfer();  // the original's files are readable only while it is dispatched
      files.forEach((file) => transfer.items.add(file));
      return new DragEvent("drop", { bubbles: true, cancelable: true, dataTransfer: transfer,
                                     clientX: event.clientX, clientY: event.clientY });
    });
  }, true);
})();
