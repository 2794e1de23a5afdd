// The workspace picker: every workspace the signed-in user may read.

import { get } from "../api.js";
import { fmtTime, h, table } from "../dom.js";

export async function render(main) {
  main.append(h("h1", {}, "Workspaces"));
  const body = await get("workspaces");
  const rows = body.value || [];
  if (!rows.length) {
    main.append(h("p", { class: "muted" }, "No workspace you can read. Ask an admin for a role, or create one with ", h("code", {}, "shoal workspace create"), "."));
    return;
  }
  main.append(
    table(
      [
        { label: "Name", value: (w) => h("a", { href: `/studio/workspaces/${encodeURIComponent(w.name)}/jobs` }, w.name) },
        { label: "Description", value: (w) => w.description || "" },
        { label: "Created", value: (w) => fmtTime(w.creation_context?.created_at) },
      ],
      rows,
      { rowHref: (w) => `/studio/workspaces/${encodeURIComponent(w.name)}/jobs` },
    ),
  );
}
