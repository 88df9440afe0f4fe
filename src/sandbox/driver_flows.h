// THE flow table of the sandbox's Driver: every flow is one row here — its name (the control
// API's POST /_sandbox/flows/<name> and the CLI's `wharf-sandbox <name>`), its handler (a
// function `Json handler(DriverImpl&, const Json& params)` in namespace detail::flows, defined
// in the family file named by the comment above its group) and a one-line description.
// Driver::run() dispatches and Driver::flow_names() lists from these rows and nothing else.
//
// Adding a flow: write the handler in its family file (driver_<family>.cpp) and add its row.
#pragma once

// clang-format off
#define WHARF_SANDBOX_FLOWS(FLOW)                                                              \
  /* installations: driver_installations.cpp */                                              \
  FLOW("install", install, "Upsert Installation (PUT /v1/installations/{id}) as the installer") \
  FLOW("plans", plans, "List billing plans of a product, an installation or a resource")      \
  /* resources: driver_resources.cpp */                                                      \
  FLOW("provision", provision, "Provision Resource, then read it back with Get Resource")     \
  FLOW("get-resource", get_resource, "Get Resource (system auth); refreshes the sandbox's copy") \
  FLOW("list-resources", list_resources, "List Resources of an installation, optionally by ids") \
  FLOW("update-resource", update_resource, "Update Resource (PATCH) as a team member")        \
  FLOW("delete-resource", delete_resource, "Delete Resource (user or system auth)")           \
  FLOW("repl", repl, "Run a REPL command on a resource (JSON or JSONL streaming)")            \
  FLOW("rotate-secrets", rotate_secrets, "Rotate a resource's secrets (sync or async answer)") \
  /* installations: driver_installations.cpp */                                              \
  FLOW("change-plan", change_plan, "Change the installation's plan, or a resource's (resourceId)") \
  /* billing: driver_billing.cpp */                                                          \
  FLOW("purchase", purchase, "Prepayment purchase: a paid invoice, then Provision Purchase")  \
  /* transfers: driver_transfers.cpp */                                                      \
  FLOW("transfer-create", transfer_create, "Create a resource transfer request (current or legacy shape)") \
  FLOW("transfer-verify", transfer_verify, "Verify a transfer claim from the target installation") \
  FLOW("transfer-accept", transfer_accept, "Accept a transfer claim; moves the resources")    \
  /* installations: driver_installations.cpp */                                              \
  FLOW("uninstall", uninstall, "Delete Installation, then the signed removed webhook")        \
  /* sso: driver_sso.cpp */                                                                  \
  FLOW("sso", sso, "Issue an SSO code and the partner's Redirect Login URL")                  \
  /* webhooks: driver_webhook_flow.cpp */                                                    \
  FLOW("webhook", webhook, "Send a signed webhook (built from the sandbox's state or given)") \
  /* deployments: driver_deployments.cpp */                                                  \
  FLOW("deploy", deploy, "A deployment of a project the resource is connected to: action, check runs, judged") \
  /* installations: driver_installations.cpp */                                              \
  FLOW("get-installation", get_installation, "Get Installation; refreshes the sandbox's copy")
// clang-format on
