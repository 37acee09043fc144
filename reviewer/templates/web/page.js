// Light help on the review page; every form works without it.
// "Select all" for the bulk form: shown only when this script runs.
document.addEventListener("DOMContentLoaded", () => {
  const all = document.getElementById("select-all");
  if (!all) return;
  all.hidden = false;
  all.addEventListener("change", () => {
    document.querySelectorAll("input.pick").forEach((box) => { box.checked = all.checked; });
  });
});
