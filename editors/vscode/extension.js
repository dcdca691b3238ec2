// The Flow extension: starts `flowc lsp` for `.flow` files and connects it to
// VS Code through vscode-languageclient. Everything the editor shows
// (diagnostics, hover, completion, definitions, formatting) comes from the
// server; this file only starts it and restarts it when its path changes.
"use strict";

const vscode = require("vscode");
const { LanguageClient, TransportKind } = require("vscode-languageclient/node");

/** @type {LanguageClient | undefined} */
let client;

function serverPath() {
  const configured = vscode.workspace.getConfiguration("flow").get("server.path");
  return typeof configured === "string" && configured.trim() !== "" ? configured.trim() : "flowc";
}

async function start(context) {
  const command = serverPath();
  const executable = { command, args: ["lsp"], transport: TransportKind.stdio };
  client = new LanguageClient(
    "flow",
    "Flow (flowc lsp)",
    { run: executable, debug: executable },
    {
      documentSelector: [
        { scheme: "file", language: "flow" },
        { scheme: "untitled", language: "flow" },
      ],
      synchronize: {
        // Other .flow files and flow.toml change what an open file means.
        fileEvents: vscode.workspace.createFileSystemWatcher("**/{*.flow,flow.toml}"),
      },
    }
  );
  try {
    await client.start();
  } catch (error) {
    vscode.window.showErrorMessage(
      `Could not start "${command} lsp": ${error}. Set "flow.server.path" to the flowc binary.`
    );
  }
  context.subscriptions.push({ dispose: () => client && client.stop() });
}

async function restart(context) {
  if (client) {
    await client.stop();
    client = undefined;
  }
  await start(context);
}

/** @param {vscode.ExtensionContext} context */
async function activate(context) {
  context.subscriptions.push(
    vscode.commands.registerCommand("flow.restartServer", () => restart(context)),
    vscode.workspace.onDidChangeConfiguration((event) => {
      if (event.affectsConfiguration("flow.server.path")) {
        restart(context);
      }
    })
  );
  await start(context);
}

async function deactivate() {
  if (client) {
    await client.stop();
  }
}

module.exports = { activate, deactivate };
