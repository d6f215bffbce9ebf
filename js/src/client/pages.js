/**
 * Static scenes in the participant page: text pages, surveys, the end page,
 * and the error panel. Scene text is the researcher's HTML; nothing a
 * participant typed is ever inserted as HTML.
 * @module client/pages
 */

function element(tag, attrs = {}, children = []) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "html") node.innerHTML = value;
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

/** A card with the scene's header and body. */
export function card(root, meta) {
  root.replaceChildren();
  const box = element("div", { class: "mug-card" });
  if (meta.header) box.append(element("h1", { html: meta.header }));
  if (meta.body) box.append(element("div", { class: "mug-body", html: meta.body }));
  root.append(box);
  return box;
}

/**
 * A start or text page, with a continue button unless `onContinue` is null (a page the server moves on by itself).
 * @param {HTMLElement} root
 * @param {Object} meta the scene's client metadata
 * @param {(() => void)|null} onContinue
 */
export function showText(root, meta, onContinue) {
  const box = card(root, meta);
  if (!onContinue) return; // a page the server moves on by itself (e.g. the entry screening's check)
  const button = element("button", { type: "button", text: meta.button || "Continue" });
  button.addEventListener("click", () => {
    button.disabled = true;
    onContinue();
  });
  box.append(button);
  button.focus();
}

function questionField(q) {
  const wrap = element("fieldset", { class: "mug-question", "data-qid": q.qid }, [element("legend", { text: q.prompt + (q.required ? " *" : "") })]);
  if (q.kind === "text") {
    wrap.append(element("textarea", { name: q.qid, maxlength: String(q.max_length), rows: "3", cols: "60" }));
  } else if (q.kind === "likert") {
    const row = element("div", { class: "mug-likert" });
    if (q.labels?.[0]) row.append(element("span", { text: q.labels[0] + " " }));
    for (let i = 1; i <= q.points; i++) {
      row.append(element("label", {}, [element("input", { type: "radio", name: q.qid, value: String(i) }), ` ${i}`]));
    }
    if (q.labels?.[1]) row.append(element("span", { text: " " + q.labels[1] }));
    wrap.append(row);
  } else if (q.kind === "choice") {
    for (const option of q.options) {
      const input = element("input", { type: q.multiple ? "checkbox" : "radio", name: q.qid, value: option });
      wrap.append(element("label", {}, [input, ` ${option}`]), element("br"));
    }
  }
  return wrap;
}

function answerOf(form, q) {
  if (q.kind === "text") return form.elements[q.qid].value;
  const checked = [...form.querySelectorAll(`input[name="${q.qid}"]:checked`)].map((i) => i.value);
  if (q.kind === "likert") return checked.length ? Number(checked[0]) : null;
  return q.multiple ? checked : (checked[0] ?? null);
}

/**
 * A survey form; `onSubmit(answers)` sends them. Returns `{showProblem(text)}`
 * for the server's verdict on a submission.
 */
export function showSurvey(root, meta, onSubmit) {
  const box = card(root, meta);
  const form = element("form", { novalidate: "" });
  for (const q of meta.questions) form.append(questionField(q));
  const problem = element("div", { class: "mug-error", role: "alert", hidden: "" });
  const button = element("button", { type: "submit", text: meta.button || "Submit" });
  form.append(problem, button);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const answers = Object.fromEntries(meta.questions.map((q) => [q.qid, answerOf(form, q)]));
    const missing = meta.questions.filter((q) => q.required && (answers[q.qid] === null || answers[q.qid] === "" || answers[q.qid]?.length === 0));
    if (missing.length) {
      problem.hidden = false;
      problem.textContent = `Please answer: ${missing.map((q) => q.prompt).join("; ")}`;
      return;
    }
    button.disabled = true;
    onSubmit(answers);
  });
  box.append(form);
  return {
    showProblem(text) {
      problem.hidden = false;
      problem.textContent = text;
      button.disabled = false;
    },
  };
}

/** The end page: completion code and, if configured, a redirect. */
export function showEnd(root, meta) {
  const box = card(root, meta);
  if (meta.completion_code) {
    box.append(element("p", { text: "Your completion code:" }), element("p", { class: "mug-code", text: meta.completion_code }));
  }
  if (meta.redirect_url) {
    box.append(element("p", { text: "You will be redirected in a moment." }));
    setTimeout(() => window.location.assign(meta.redirect_url), 1000 * (meta.redirect_delay_s ?? 3));
  }
}

/**
 * An error panel on top of the page.
 * @param {HTMLElement} root
 * @param {string} text
 */
export function showError(root, text) {
  let panel = root.querySelector(":scope > .mug-error");
  if (!panel) {
    panel = element("div", { class: "mug-error", role: "alert" });
    root.prepend(panel);
  }
  panel.textContent = text;
}
