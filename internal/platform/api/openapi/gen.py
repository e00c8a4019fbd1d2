#!/usr/bin/env python3
"""Writes openapi.json, the platform's OpenAPI 3.1 document (served at
/api/v1/openapi.json). Edit this file, run it, commit both; the api
package's tests check that every registered route is documented and that
real answers validate against the document."""
import json, os

def ref(n): return {"$ref": "#/components/schemas/" + n}
S = lambda **p: {"type": "string", **p}
nullable_str = {"type": ["string", "null"]}
ts = S(format="date-time")

schemas = {
  "Error": {"type": "object", "required": ["error"], "properties": {"error": S(description="What went wrong and, where it helps, how to fix it.")},
            "description": "Every error answer: 4xx and 5xx."},
  "AgentError": {"type": "object", "required": ["error"], "properties": {"error": S(), "agentId": S(), "status": S()},
                 "description": "An error about one agent (a failed create answers 503 with the ERROR agent's id)."},
  "Session": {"type": "object", "required": ["id", "title", "url"], "properties": {
      "id": S(), "title": nullable_str, "url": S(format="uri", description="The embeddable session page, capability included."),
      "messageId": S()}},
  "LastError": {"type": ["object", "null"], "required": ["sessionId", "message", "at"], "properties": {"sessionId": S(), "message": S(), "at": ts}},
  "AgentStatus": S(enum=["PROVISIONING", "RUNNING", "STOPPED", "ERROR"]),
  "Agent": {"type": "object", "required": ["agentId", "name", "status", "busy", "url", "sessions", "errorMsg", "scopeId", "model", "createdAt", "sessionPermissions", "lastError"],
            "properties": {"agentId": S(), "name": S(), "status": ref("AgentStatus"), "busy": {"type": "boolean"}, "url": S(format="uri"),
                           "sessions": {"type": "array", "items": ref("Session")}, "errorMsg": nullable_str, "scopeId": nullable_str,
                           "model": S(), "createdAt": ts, "sessionPermissions": {"type": "boolean"}, "lastError": ref("LastError")}},
  "AgentSummary": {"type": "object", "required": ["agentId", "name", "status", "url", "errorMsg", "scopeId", "model", "createdAt", "sessionPermissions"],
            "properties": {"agentId": S(), "name": S(), "status": ref("AgentStatus"), "url": S(format="uri"), "errorMsg": nullable_str,
                           "scopeId": nullable_str, "model": S(), "createdAt": ts, "sessionPermissions": {"type": "boolean"}}},
  "CreatedAgent": {"type": "object", "required": ["agentId", "scopeId", "url", "sessions"], "properties": {"agentId": S(), "scopeId": nullable_str,
                   "url": S(format="uri"), "sessions": {"type": "array", "items": ref("Session"), "description": "The initial prompt's session, when one was given."}}},
  "AgentList": {"type": "object", "required": ["agents"], "properties": {"agents": {"type": "array", "items": ref("AgentSummary")}}},
  "CreateAgent": {"type": "object", "required": ["name"], "properties": {"name": S(), "initialPrompt": S(), "hiddenPrompt": S(), "scopeId": S(),
                  "scope": S(description="A scope's name, instead of scopeId."), "model": S(), "sessionPermissions": {"type": "boolean"},
                  "mcpServers": {"type": "object", "description": "MCP servers in OpenCode's shape (docs/mcp.md): name → {type: local, command, environment?} or {type: remote, url, headers?}.", "additionalProperties": {"type": "object"}}}},
  "PatchAgent": {"type": "object", "properties": {"name": S(), "hiddenPrompt": S(), "scopeId": nullable_str, "model": S(), "sessionPermissions": {"type": "boolean"}}},
  "Deleted": {"type": "object", "required": ["deleted"], "properties": {"deleted": {"const": True}}},
  "Lifecycle": {"type": "object", "required": ["agentId", "status"], "properties": {"agentId": S(), "status": ref("AgentStatus"),
                "started": {"type": "boolean"}, "stopped": {"type": "boolean"}, "restarted": {"type": "boolean"}}},
  "SendMessage": {"type": "object", "required": ["message"], "properties": {"message": S(), "sessionId": S()}},
  "RuntimeAnswer": {"type": "object", "description": "The agent runtime's answer, passed through (docs/runtime-control.md)."},
  "Scope": {"type": "object", "required": ["id", "name", "description"], "properties": {"id": S(), "name": S(), "description": nullable_str,
            "agentCount": {"type": "integer"}, "secretCount": {"type": "integer"}, "createdAt": ts, "updatedAt": ts}},
  "ScopeList": {"type": "object", "required": ["scopes"], "properties": {"scopes": {"type": "array", "items": ref("Scope")}}},
  "ScopeDetail": {"type": "object", "required": ["id", "name", "description", "createdAt", "updatedAt", "agents", "secrets"], "properties": {
      "id": S(), "name": S(), "description": nullable_str, "createdAt": ts, "updatedAt": ts,
      "agents": {"type": "array", "items": {"type": "object", "required": ["id", "name", "status", "createdAt"], "properties": {"id": S(), "name": S(), "status": ref("AgentStatus"), "createdAt": ts}}},
      "secrets": {"type": "array", "items": ref("Secret")}}},
  "ScopeInput": {"type": "object", "properties": {"name": S(), "description": nullable_str}},
  "Secret": {"type": "object", "required": ["id", "key", "createdAt", "updatedAt"], "properties": {"id": S(), "key": S(), "createdAt": ts, "updatedAt": ts},
             "description": "A secret's metadata: its value is never returned."},
  "SecretList": {"type": "object", "required": ["secrets"], "properties": {"secrets": {"type": "array", "items": ref("Secret")}}},
  "SecretPut": {"type": "object", "required": ["id", "key", "created"], "properties": {"id": S(), "key": S(), "created": {"type": "boolean"}},
                "description": "The secret set: created (201) or replaced (200)."},
  "SecretInput": {"type": "object", "required": ["key", "value"], "properties": {"key": S(), "value": S()}},
  "Org": {"type": "object", "required": ["id", "name", "createdAt", "defaultModel", "effectiveDefaultModel"], "properties": {
      "id": S(), "name": S(), "createdAt": ts, "defaultModel": nullable_str, "effectiveDefaultModel": S()}},
  "OrgInput": {"type": "object", "properties": {"defaultModel": nullable_str}},
  "Token": {"type": "object", "required": ["id", "label", "createdAt", "lastUsedAt"], "properties": {"id": S(), "label": S(),
            "token": S(description="Only in the answer that creates it."), "createdAt": ts, "lastUsedAt": {"type": ["string", "null"], "format": "date-time"}}},
  "TokenList": {"type": "object", "required": ["tokens"], "properties": {"tokens": {"type": "array", "items": ref("Token")}}},
  "TokenInput": {"type": "object", "required": ["label"], "properties": {"label": S()}},
  "Revoked": {"type": "object", "required": ["id", "revoked"], "properties": {"id": S(), "revoked": {"const": True}}},
  "Health": {"type": "object", "required": ["status"], "properties": {"status": S(enum=["ok", "unavailable"]), "sandbox": S(enum=["enabled", "disabled"]),
             "database": S(enum=["ok", "unavailable"]), "error": S()}},
  "Ready": {"type": "object", "required": ["status"], "properties": {"status": S(enum=["ready", "starting", "stopping"])}},
}

def param(name, where="path", desc=None):
    p = {"name": name, "in": where, "required": where == "path", "schema": S()}
    if desc: p["description"] = desc
    return p

def json_body(schema):
    return {"required": True, "content": {"application/json": {"schema": ref(schema) if isinstance(schema, str) else schema}}}

ERR = {"description": "An error.", "content": {"application/json": {"schema": ref("Error")}}}
def err(desc):
    return {"description": desc, "content": {"application/json": {"schema": ref("Error")}}}
def ok(schema, code="200", desc="OK"):
    return {code: {"description": desc, "content": {"application/json": {"schema": ref(schema) if isinstance(schema, str) else schema}}}}
SSE = {"200": {"description": "Server-sent events: `id: N` and `data: <json>` per event, `: ping` comments as heartbeat; reconnect with Last-Event-ID.",
               "content": {"text/event-stream": {"schema": S()}}}}
MULTIPART = {"required": True, "content": {"multipart/form-data": {"schema": {"type": "object", "properties": {"file": S(contentEncoding="binary")}}}}}

paths = {}
def op(method, path, opid, summary, responses, body=None, params=(), tag="agents", security=None, extra=None):
    o = {"operationId": opid, "summary": summary, "tags": [tag], "responses": dict(responses)}
    # The 4xx every such route answers, each {"error": ...}: a body that is
    # not the JSON asked for, a missing or wrong token or capability, an
    # id that names nothing of the caller's.
    if body and "application/json" in body.get("content", {}):
        o["responses"].setdefault("400", err("The body is not the JSON this route takes (malformed, a missing or invalid field, too large: 413)."))
    if security != []:
        o["responses"].setdefault("401", err("No credential, or one that is wrong, revoked or expired."))
    if "{" in path:
        o["responses"].setdefault("404", err("No such " + ", ".join(p[1:-1] for p in path.split("/") if p.startswith("{")) + " of the caller's."))
    o["responses"].setdefault("default", ERR)
    if body: o["requestBody"] = body
    ps = [param(p[1:-1]) for p in path.split("/") if p.startswith("{")]
    ps += list(params)
    if ps: o["parameters"] = ps
    if security is not None: o["security"] = security
    if extra: o.update(extra)
    paths.setdefault(path, {})[method.lower()] = o

A = "/api/v1/agents"
op("GET", A, "listAgents", "List the organization's agents", ok("AgentList"))
op("POST", A, "createAgent", "Create an agent and wait until its runtime is healthy", ok("CreatedAgent") | {"503": {"description": "The runtime did not start; the agent is ERROR.", "content": {"application/json": {"schema": ref("AgentError")}}}}, json_body("CreateAgent"))
op("GET", A + "/{agentId}", "getAgent", "An agent, with busy and its sessions", ok("Agent"))
op("PATCH", A + "/{agentId}", "updateAgent", "Change an agent", ok("AgentSummary"), json_body("PatchAgent"))
op("DELETE", A + "/{agentId}", "deleteAgent", "Delete an agent and its runtime", ok("Deleted"))
for verb in ("start", "stop", "restart"):
    op("POST", A + "/{agentId}/" + verb, verb + "Agent", verb.capitalize() + " an agent's runtime", ok("Lifecycle"))
op("GET", A + "/{agentId}/messages", "listMessages", "A session's messages, or every session's", ok("RuntimeAnswer"), params=[param("sessionId", "query")])
op("POST", A + "/{agentId}/messages", "sendMessage", "Send a message (a new session without sessionId)", ok("RuntimeAnswer"), json_body("SendMessage"))
op("GET", A + "/{agentId}/usage", "getUsage", "Token usage and cost", ok("RuntimeAnswer"))
op("POST", A + "/{agentId}/abort", "abortAgent", "Abort the running turns", ok("RuntimeAnswer"))
op("POST", A + "/{agentId}/files", "uploadFile", "Upload a file into the agent's workspace", ok("RuntimeAnswer"), MULTIPART)
op("GET", A + "/{agentId}/files", "listFiles", "List a directory of the agent's workspace", ok("RuntimeAnswer"), params=[param("path", "query", "the directory, relative to the workspace; the workspace when empty")])
op("GET", A + "/{agentId}/files/content", "downloadFile", "Download a file of the agent's workspace (always as an attachment)",
   {"200": {"description": "The file's bytes, as application/octet-stream with Content-Disposition: attachment.", "content": {"application/octet-stream": {"schema": S(contentEncoding="binary")}}}},
   params=[param("path", "query", "the file, relative to the workspace")])
op("GET", A + "/{agentId}/.well-known/agent-card.json", "getAgentCard", "The agent's A2A Agent Card (docs/a2a.md)", ok({"type": "object", "required": ["name", "url", "version", "capabilities", "skills"], "properties": {
       "name": S(), "url": S(), "version": S(), "capabilities": {"type": "object"}, "skills": {"type": "array", "items": {"type": "object"}}}}))
op("POST", A + "/{agentId}/a2a", "postA2A", "The agent's A2A JSON-RPC endpoint: message/send, message/stream (SSE), tasks/get, tasks/cancel, tasks/resubscribe (SSE)",
   {"200": {"description": "A JSON-RPC response; for message/stream and tasks/resubscribe an SSE stream of them.", "content": {"application/json": {"schema": {"type": "object"}}, "text/event-stream": {"schema": S()}}}},
   json_body({"type": "object", "required": ["jsonrpc", "method"], "properties": {"jsonrpc": {"const": "2.0"}, "id": {}, "method": S(), "params": {"type": "object"}}}))
op("GET", A + "/{agentId}/permissions", "listPermissions", "Pending permission requests", ok("RuntimeAnswer"))
op("POST", A + "/{agentId}/permissions/{itemId}/reply", "replyPermission", "Answer a permission request", ok("RuntimeAnswer"), json_body("RuntimeAnswer"))
op("GET", A + "/{agentId}/questions", "listQuestions", "Pending questions", ok("RuntimeAnswer"))
op("POST", A + "/{agentId}/questions/{itemId}/reply", "replyQuestion", "Answer a question", ok("RuntimeAnswer"), json_body("RuntimeAnswer"))
op("GET", A + "/{agentId}/events", "streamEvents", "The agent's events as server-sent events", SSE, params=[param("Last-Event-ID", "header")])

SC = "/api/v1/scopes"
op("GET", SC, "listScopes", "List scopes", ok("ScopeList"), tag="scopes")
op("POST", SC, "createScope", "Create a scope", ok("Scope", "201", "Created"), json_body("ScopeInput"), tag="scopes")
op("GET", SC + "/{scopeId}", "getScope", "A scope with its agents and secrets", ok("ScopeDetail"), tag="scopes")
op("PATCH", SC + "/{scopeId}", "updateScope", "Change a scope", ok("Scope"), json_body("ScopeInput"), tag="scopes")
op("DELETE", SC + "/{scopeId}", "deleteScope", "Delete a scope", ok("Deleted"), tag="scopes")
op("GET", SC + "/{scopeId}/secrets", "listScopeSecrets", "A scope's secrets (metadata)", ok("SecretList"), tag="scopes")
op("PUT", SC + "/{scopeId}/secrets", "putScopeSecret", "Set a scope's secret", ok("SecretPut") | ok("SecretPut", "201", "Created"), json_body("SecretInput"), tag="scopes")
op("DELETE", SC + "/{scopeId}/secrets/{key}", "deleteScopeSecret", "Delete a scope's secret", ok("Deleted"), tag="scopes")
op("GET", "/api/v1/secrets", "listOrgSecrets", "The organization's secrets (metadata)", ok("SecretList"), tag="secrets")
op("PUT", "/api/v1/secrets", "putOrgSecret", "Set an organization secret", ok("SecretPut") | ok("SecretPut", "201", "Created"), json_body("SecretInput"), tag="secrets")
op("DELETE", "/api/v1/secrets/{key}", "deleteOrgSecret", "Delete an organization secret", ok("Deleted"), tag="secrets")
op("GET", "/api/v1/org", "getOrg", "The organization", ok("Org"), tag="org")
op("PATCH", "/api/v1/org", "updateOrg", "Change the organization's default model", ok("Org"), json_body("OrgInput"), tag="org")
op("GET", "/api/v1/tokens", "listTokens", "API tokens", ok("TokenList"), tag="tokens")
op("POST", "/api/v1/tokens", "createToken", "Create an API token (its value is shown once)", ok("Token", "201", "Created"), json_body("TokenInput"), tag="tokens")
op("DELETE", "/api/v1/tokens/{tokenId}", "revokeToken", "Revoke an API token", ok("Revoked"), tag="tokens")

NONE = []
op("GET", "/api/v1/openapi.json", "getOpenAPI", "This document", {"200": {"description": "OpenAPI 3.1", "content": {"application/json": {"schema": {"type": "object"}}}}}, tag="meta", security=NONE)
op("GET", "/health", "health", "Liveness, with the database's state", ok("Health") | {"503": {"description": "The database does not answer.", "content": {"application/json": {"schema": ref("Health")}}}}, tag="meta", security=NONE)
op("GET", "/ready", "ready", "Readiness: ready once the agents of an earlier process are re-attached", ok("Ready") | {"503": {"description": "Starting or stopping.", "content": {"application/json": {"schema": ref("Ready")}}}}, tag="meta", security=NONE)

P = "/a/{agentId}/session/{sessionId}"
CAP = [{"capability": []}, {"capabilityQuery": []}]
def page_error(desc):
    return {"description": desc + " A browser's page load (Accept: text/html) gets an HTML page saying what happened and to ask the organisation for a new link; other clients get the JSON error.",
            "content": {"text/html": {"schema": S()}, "application/json": {"schema": ref("Error")}}}
op("GET", P, "sessionPage", "The embeddable session page (HTML)", {"200": {"description": "The page.", "content": {"text/html": {"schema": S()}}},
   "401": page_error("No capability in the link."), "404": page_error("A bad or expired link (its session or agent is gone)."),
   "default": page_error("An error.")}, tag="session page", security=CAP)
def sp(method, sub, opid, summary, responses, body=None):
    op(method, P + "/api" + sub, opid, summary, responses, body, tag="session page", security=CAP)
sp("GET", "/messages", "sessionListMessages", "The session's messages", ok("RuntimeAnswer"))
sp("POST", "/messages", "sessionSendMessage", "Send a message to the session", ok("RuntimeAnswer"), json_body("SendMessage"))
sp("GET", "/events", "sessionStreamEvents", "The session's events as server-sent events", SSE)
sp("GET", "/permissions", "sessionListPermissions", "The session's pending permission requests", ok("RuntimeAnswer"))
sp("POST", "/permissions/{itemId}", "sessionReplyPermissionShort", "Answer a permission request", ok("RuntimeAnswer"), json_body("RuntimeAnswer"))
sp("POST", "/permissions/{itemId}/reply", "sessionReplyPermission", "Answer a permission request", ok("RuntimeAnswer"), json_body("RuntimeAnswer"))
sp("GET", "/questions", "sessionListQuestions", "The session's pending questions", ok("RuntimeAnswer"))
sp("POST", "/questions/{itemId}", "sessionReplyQuestionShort", "Answer a question", ok("RuntimeAnswer"), json_body("RuntimeAnswer"))
sp("POST", "/questions/{itemId}/reply", "sessionReplyQuestion", "Answer a question", ok("RuntimeAnswer"), json_body("RuntimeAnswer"))
sp("POST", "/files", "sessionUploadFile", "Upload a file for the session", ok("RuntimeAnswer"), MULTIPART)
sp("POST", "/abort", "sessionAbort", "Abort the session's turn", ok("RuntimeAnswer"))
sp("GET", "/usage", "sessionUsage", "The session's usage", ok("RuntimeAnswer"))
sp("GET", "/status", "sessionStatus", "The session's status", ok("RuntimeAnswer"))

doc = {
  "openapi": "3.1.0",
  "info": {"title": "agenthost platform API", "version": "1", "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
           "description": "The multi-tenant platform's REST API (docs/platform.md). Every /api/v1 route takes an organization's API token as a Bearer token; session pages take a session capability. Every error is {\"error\": \"...\"}. Every answer carries X-Request-Id."},
  "servers": [{"url": "/"}],
  "security": [{"bearer": []}],
  "tags": [{"name": t, "description": d} for t, d in [
      ("agents", "Agents, each in its own runtime: lifecycle, messages, files, permissions, questions, events, A2A."),
      ("scopes", "Scopes: groups of agents sharing secrets."),
      ("secrets", "The organization's secrets, which reach every agent of it."),
      ("org", "The organization's settings."),
      ("tokens", "The organization's API tokens."),
      ("session page", "An embeddable session page and its API, authorized by a session capability."),
      ("meta", "This document, liveness and readiness.")]],
  "paths": paths,
  "components": {"schemas": schemas, "securitySchemes": {
      "bearer": {"type": "http", "scheme": "bearer", "description": "An organization's API token (agenthost platform token create)."},
      "capability": {"type": "apiKey", "in": "header", "name": "X-Session-Capability", "description": "A session capability, from a session URL's cap parameter."},
      "capabilityQuery": {"type": "apiKey", "in": "query", "name": "cap", "description": "The same capability in the query."}}},
}
out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "openapi.json")
with open(out, "w") as f:
    json.dump(doc, f, indent=1)
    f.write("\n")
