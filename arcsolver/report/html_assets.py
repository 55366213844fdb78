"""The evaluation page's style sheet, and its script, which sorts and filters the tasks in the
browser (report/html.py inlines both)."""

CSS = """
:root{--bg:#f4f3ef;--card:#fff;--ink:#222;--dim:#6b6b6b;--yes:#1f9d55;--part:#c77c02;--no:#c0392b}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--ink);font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif}
[hidden]{display:none!important}
.top{padding:16px 24px 8px}
h1{font-size:20px;margin:0 0 10px}
.scores{display:flex;gap:12px;flex-wrap:wrap}
.score{background:var(--card);border-radius:8px;padding:8px 16px;box-shadow:0 1px 2px #0002;display:flex;flex-direction:column}
.score b{font-size:22px}
.score small,.sources,.meta,figcaption small,.note{color:var(--dim)}
.sources{margin:8px 0 0;font-size:12px}
.controls{position:sticky;top:0;z-index:1;background:var(--bg);padding:8px 24px;border-bottom:1px solid #ddd;display:flex;gap:18px;flex-wrap:wrap;align-items:center}
.controls input{width:5em}
#count{font-weight:600}
.legend{color:var(--dim);font-size:12px}
.key{display:inline-block;width:12px;height:12px;margin:0 4px 0 10px;vertical-align:-2px;border-radius:2px}
.key.hit{border:3px solid var(--yes)}
.key.wrong{background:radial-gradient(#fff 0 2px,#000 2.5px) #000}
.key.fallback{background:repeating-linear-gradient(45deg,#fff 0 3px,#bbb 3px 6px)}
main{padding:12px 24px 32px;display:flex;flex-direction:column;gap:14px}
.task{background:var(--card);border-radius:8px;padding:10px 16px;box-shadow:0 1px 2px #0002;border-left:6px solid var(--no)}
.task.solved{border-left-color:var(--yes)}
.task header{display:flex;align-items:baseline;gap:12px;flex-wrap:wrap}
h2{font:600 16px ui-monospace,Menlo,Consolas,monospace;margin:0}
.badge{font-weight:600;border-radius:10px;padding:0 8px;color:#fff;background:var(--no)}
.badge.yes{background:var(--yes)}.badge.part{background:var(--part)}
.row{display:flex;gap:12px;align-items:flex-start;margin-top:8px}
h3{font-size:12px;font-weight:600;color:var(--dim);width:96px;flex:none;margin:4px 0 0}
.grids{display:flex;gap:14px;flex-wrap:wrap;align-items:flex-start}
.pair{display:flex;gap:6px;align-items:center;padding-right:8px;border-right:1px dashed #ddd}
.arrow{color:var(--dim)}
figure{margin:0;padding:3px;border:3px solid transparent;border-radius:4px;display:flex;flex-direction:column;align-items:center}
figure.hit{border-color:var(--yes)}
figure.fallback{background:repeating-linear-gradient(45deg,#fff 0 6px,#eee 6px 12px)}
figure.answer{background:#eef6ee}
figcaption{font-size:12px;white-space:nowrap}
figcaption small{margin-left:4px}
svg{display:block;background:#000;shape-rendering:crispEdges}
svg .lines{stroke:#555;stroke-width:1px;vector-effect:non-scaling-stroke;fill:none}
svg .wrong{fill:#fff;stroke:#000;stroke-width:.08;shape-rendering:auto}
.missing{padding:16px;color:var(--dim);border:1px dashed #bbb}
"""

# Sort and filter by moving the task sections; without JavaScript every task is shown in file order.
JS = """
const byId = id => document.getElementById(id);
const list = byId("tasks"), tasks = [...list.querySelectorAll("section.task")];
function update() {
  const show = byId("show").value, key = byId("sort").value;
  const lo = Number(byId("min-cells").value) || 0, hi = byId("max-cells").value === "" ? Infinity : Number(byId("max-cells").value);
  const field = key.replace("-", ""), sign = key.startsWith("-") ? -1 : 1;
  const value = t => field === "id" ? t.dataset.id : Number(t.dataset[field]);
  tasks.sort((a, b) => {
    const x = value(a), y = value(b);
    return sign * (x < y ? -1 : x > y ? 1 : 0) || a.dataset.order - b.dataset.order;
  });
  let shown = 0;
  for (const t of tasks) {
    const cells = Number(t.dataset.cells);
    const keep = (show === "all" || (show === "solved") === (t.dataset.solved === "1")) && cells >= lo && cells <= hi;
    t.hidden = !keep;
    shown += keep;
    list.appendChild(t);
  }
  byId("count").textContent = shown + " of " + tasks.length + " tasks";
}
for (const id of ["show", "sort", "min-cells", "max-cells"]) byId(id).addEventListener("input", update);
update();
"""
