// Shown when the app is reached without a session (the server normally answers /studio/login itself).

import { h } from "../dom.js";

export function render(main) {
  main.append(
    h("h1", {}, "Sign in to Shoal studio"),
    h("p", {}, "Run ", h("code", {}, "shoal studio"), " on a machine with your Shoal token: it prints a one-time link that signs this browser in."),
  );
}
