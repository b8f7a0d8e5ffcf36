// MathJax 3 for pymdownx.arithmatex in generic mode: arithmatex wraps $...$ in \( \) and
// $$...$$ in \[ \] inside elements of class "arithmatex"; typeset those and nothing else.
window.MathJax = {
  tex: {
    inlineMath: [["\\(", "\\)"]],
    displayMath: [["\\[", "\\]"]],
    processEscapes: true,
    processEnvironments: true
  },
  options: {
    ignoreHtmlClass: ".*|",
    processHtmlClass: "arithmatex"
  }
};
