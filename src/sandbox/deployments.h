// The sandbox's model of Vercel projects and deployments, for flows.md F17 (deployment
// integration actions and checks): what the driver records when it plays a deployment
// (create it, send deployment.integration.action.start, open check runs) and what the
// partner's calls to the Vercel API (§10.1–10.4, sandbox/vercel_api_deployments.cpp) change,
// plus two judges that say whether a partner's reporting followed the protocol.
//
// State keys (top level of the State document; all times are epoch milliseconds on
// ctx.clock, as Vercel's deployment and checks APIs use):
//   projects     projectId -> {id ("prj_…"), name, accountId, installationId,
//                connectedResources [resourceId…], createdAt}
//                A project belongs to the installation (team) it was created for; its name is
//                unique within that team.
//   deployments  deploymentId -> {id ("dpl_…"), url ("<name>-<random>.vercel.app", no scheme),
//                name (the project's), projectId, installationId, target (preview |
//                production), meta {githubCommitSha, githubCommitRef, …strings},
//                readyState (QUEUED | INITIALIZING | BUILDING | READY | ERROR | CANCELED),
//                createdAt,
//                actions {"<resourceId>/<actionSlug>" -> {resourceId, action, startedAt?,
//                         status (pending | running | succeeded | failed), updates
//                         [{receivedAt, body}]}},
//                checkRuns {runId ("crn_…") -> {id, checkId, name, deploymentId,
//                         installationId, source {kind: "integration",
//                         integrationConfigurationId, externalResourceId?}, timeout (ms),
//                         status (queued | running | completed), conclusion?,
//                         conclusionText?, externalId?, externalUrl?, output?, completedAt?,
//                         createdAt, updatedAt, updates [{receivedAt, body}]}}}
//                startedAt of an action is absent when the partner reported on an action the
//                sandbox never started.
//   checks       checkId ("chk_…") -> Checks v2 (§10.2): {id, api: "v2", projectId,
//                installationId, name, isRerequestable, requires, targets [..], blocks,
//                timeout (ms), source {kind, externalResourceId?}, createdAt, updatedAt}
//                or legacy Checks v1 (§10.3): {id, api: "v1", deploymentId, installationId,
//                name, blocking, rerequestable, path?, detailsUrl?, externalId?, status
//                (registered | running | completed), conclusion?, output?, createdAt,
//                updatedAt, rerequestedAt?}
//   oauthCodes   code -> {installationId, userHex, redirectUri?, createdAt, expiresAt,
//                used, usedAt?} — connectable-account codes (§8.2) made by
//                POST /_sandbox/oauth/codes and spent by POST /v2/oauth/access_token.
//
// Every function takes the State lock itself: call none of them from inside
// ctx.state.mutate/read. Bad arguments throw model::ApiError (404 unknown
// installation/project/deployment/resource, 400 bad value, 409 duplicate project name).
#pragma once
#include <cstdint>
#include <string>

#include "sandbox/context.h"

namespace wharf::sandbox::deployments {

using model::Json;

// A check's timeout when its registration gives none (the reference implementation's 5 min).
constexpr int64_t kDefaultCheckTimeoutMs = 5 * 60 * 1000;

// Copies of a stored project / deployment (any installation's), or null when there is none.
Json stored_project(const Context& ctx, const std::string& project_id);
Json stored_deployment(const Context& ctx, const std::string& deployment_id);

// ---- what the driver does ----------------------------------------------------------------

// A project of installation `installation_id`'s team named `name` (non-empty, unique in the
// team). Returns the stored project.
Json create_project(Context& ctx, const std::string& installation_id, const std::string& name);
// Connects a live resource of the project's installation to the project (idempotent).
// Returns the stored project.
Json connect_resource(Context& ctx, const std::string& project_id, const std::string& resource_id);
// A deployment of the project. `target`: "preview" or "production". `meta`: an object of
// strings; githubCommitSha (40 random hex digits) and githubCommitRef ("main" for
// production, "sandbox-preview" otherwise) are filled in when absent. readyState starts as
// BUILDING. Returns the stored deployment.
Json create_deployment(Context& ctx, const std::string& project_id, const std::string& target,
                       const Json& meta = Json::object());
// Moves a deployment to a readyState (one of those above). Returns the stored deployment.
Json set_ready_state(Context& ctx, const std::string& deployment_id, const std::string& state);
// Records that the sandbox sent deployment.integration.action.start for the resource's
// action (startedAt = now, status pending, no updates; a restart clears earlier updates).
// The resource must be a live resource of the deployment's installation. Returns the record.
Json start_action(Context& ctx, const std::string& deployment_id, const std::string& resource_id,
                  const std::string& action);
// Opens one check run (status queued) for every Checks v2 check registered on the
// deployment's project whose `targets` are empty or include the deployment's target.
// Returns the runs as deployment.checkrun.start carries them (flows.md §3.3):
// [{id, checkId, source {kind: "integration", integrationConfigurationId,
//   externalResourceId?}, deploymentId, timeout}].
// `only_check` non-empty: one new run of that check alone (a rerequest), whatever its targets.
Json start_check_runs(Context& ctx, const std::string& deployment_id,
                      const std::string& only_check = "");

// ---- judges: arrays of findings {severity: "error" | "warning", rule, message} -------------

// How the partner reported the action (§10.1, F17 step 3). Rules:
//   action.recorded     (error) the action was neither started nor reported
//   action.started      (warning) reported, but the sandbox never sent action.start for it
//   action.updates      (error) no update at all
//   action.status-order (error) a status other than running before the terminal one, or any
//                       update after succeeded/failed
//   action.terminal     (error) neither succeeded nor failed was reached
//   action.outcomes     (error) an outcome not {kind: "resource-secrets", secrets: non-empty
//                       [{name non-empty, value string}]}; (warning) a secret name repeated
//   action.status-url   (error) statusUrl not ^https?:// or ^sso:
Json judge_action(Context& ctx, const std::string& deployment_id, const std::string& resource_id,
                  const std::string& action);
// How the partner reported a check run (§10.2), as of `now_ms` (ctx.clock). Rules:
//   checkrun.exists       (error) no such run on the deployment
//   checkrun.status-order (error) status went backwards (queued → running → completed), or an
//                         update after completion
//   checkrun.conclusion   (error) completed without a conclusion, or a conclusion before
//                         completion
//   checkrun.timeout      (error) completed after, or still open past, createdAt + timeout
//   checkrun.incomplete   (warning) not completed yet, still within its timeout
Json judge_check_run(Context& ctx, const std::string& deployment_id, const std::string& run_id,
                     int64_t now_ms);

// ---- webhook payloads (flows.md §3.3) -------------------------------------------------------

// deployment.integration.action.start/cancel/cleanup: {installationId, configuration{id},
// team{id}, resourceId, action, deployment{id, url, name, meta}, project{id}}.
Json action_webhook_payload(Context& ctx, const std::string& deployment_id,
                            const std::string& resource_id, const std::string& action);
// deployment.checkrun.start/cancel: {installationId, configuration{id}, team{id},
// checkRun{id, checkId, source, deploymentId, timeout}, deployment{id, url, meta},
// project{id}}. deployment.check-rerequested carries the same, plus check{id}: the user asked
// for the check again and the new run is `checkRun`.
Json checkrun_webhook_payload(Context& ctx, const std::string& deployment_id,
                              const std::string& run_id);

// ---- lookups and renderings (pure; call inside State::read/mutate) --------------------------

// The project of installation `installation_id` whose id or name is `id_or_name`; null when
// there is none (a project of another installation is not found either).
const Json* find_project(const Json& doc, const std::string& installation_id,
                         const std::string& id_or_name);
// The deployment of the installation with that id, or that url (with or without an
// http(s):// scheme); null when there is none.
const Json* find_deployment(const Json& doc, const std::string& installation_id,
                            const std::string& id_or_url);
// The key of an action in a deployment's `actions`.
std::string action_key(const std::string& resource_id, const std::string& action);
// GET /v9/projects/{idOrName}: {id, name, accountId, createdAt}.
Json project_view(const Json& project);
// GET /v13/deployments/{idOrUrl}: {id, uid, url, name, projectId, target, readyState,
// meta{githubCommitSha, githubCommitRef, …}, createdAt}. As Vercel answers, `target` is null
// for a preview deployment.
Json deployment_view(const Json& deployment);
// Checks v2 check as the API answers it: {id, name, projectId, ownerId, requires, blocks,
// targets, timeout, isRerequestable, source, sourceKind, createdAt, updatedAt}.
Json check_view(const Json& check, const std::string& owner_id);
// A check run as the API answers it (no sandbox bookkeeping: no updates list).
Json check_run_view(const Json& run);
// A Checks v1 check as the API answers it.
Json check_v1_view(const Json& check, const std::string& integration_id);

}  // namespace wharf::sandbox::deployments
