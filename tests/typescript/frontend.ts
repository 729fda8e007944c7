// A frontend's use of the API through a client generated from openapi.json (openapi-typescript
// types, openapi-fetch calls). It must type-check under --strict: every switch is exhaustive,
// so a status, phase or error code the document does not enumerate fails the build, and the
// fields the API always sends are used without optional checks.
import createClient from "openapi-fetch";
import type { components, paths } from "./generated/schema";

type Schemas = components["schemas"];
type ErrorBody = Schemas["ErrorBody"];
type Next = "retry" | "retry_later" | "sign_in" | "fix_request" | "show_other" | "give_up";

function unreachable(value: never): never {
  throw new Error(`not in the API document: ${String(value)}`);
}

export function statusText(status: Schemas["PhotoStatus"]): string {
  switch (status) {
    case "uploaded":
      return "Ready to restore";
    case "processing":
      return "Restoring";
    case "ready":
      return "Restored";
    case "archived":
      return "Archived";
    case "deleted":
      return "Deleted";
    default:
      return unreachable(status);
  }
}

export function phaseText(phase: Schemas["Phase"]): string {
  switch (phase) {
    case "queued":
      return "Waiting to start";
    case "preprocessing":
      return "Preparing the photo";
    case "generating":
      return "Restoring";
    case "storing":
      return "Saving";
    case "waiting_for_capacity":
      return "Waiting for the restoration service";
    case "succeeded":
      return "Done";
    case "failed":
      return "Failed";
    case "canceled":
      return "Canceled";
    default:
      return unreachable(phase);
  }
}

export function outcomeText(outcome: Schemas["AttemptState"]): string {
  switch (outcome) {
    case "pending":
      return "In progress";
    case "succeeded":
      return "Succeeded";
    case "failed":
      return "Failed";
    case "canceled":
      return "Canceled";
    default:
      return unreachable(outcome);
  }
}

// What to do about an error the API function answered: one case per code it can send.
export function nextStep(body: ErrorBody): Next {
  switch (body.error) {
    case "unauthenticated":
    case "anonymous_not_allowed":
      return "sign_in";
    case "unreadable_body":
    case "invalid_request":
    case "idempotency_key_reused":
    case "unsupported_media_type":
    case "upload_too_large":
      return "fix_request";
    case "photo_not_found":
    case "restore_attempt_not_found":
    case "restore_not_succeeded":
    case "photo_not_restorable":
    case "not_processing":
    case "not_archived":
    case "photo_deleted":
    case "upload_not_found":
      return "give_up";
    case "already_processing":
      return "show_other";
    case "quota_exceeded":
      return "retry_later";
    case "idempotency_in_progress":
    case "queue_unavailable":
    case "dependency_unavailable":
    case "internal_error":
      return body.retryable ? "retry" : "give_up";
    default:
      return unreachable(body.error);
  }
}

// Why an attempt failed, per code (a Record: a code the document adds must be given a text).
export const attemptErrorTitle: Record<Schemas["AttemptError"]["code"], string> = {
  already_processing: "Already restoring",
  anonymous_not_allowed: "Sign in needed",
  attempt_not_visible: "Temporary problem",
  canceled: "Canceled",
  corrupt_image: "Damaged file",
  dependency_unavailable: "Temporary problem",
  idempotency_in_progress: "Still processing",
  idempotency_key_reused: "Request reused",
  image_too_large: "Photo too large",
  invalid_provider_result: "Restoration went wrong",
  invalid_request: "Invalid request",
  not_archived: "Not archived",
  not_processing: "Nothing in progress",
  original_missing: "File missing",
  photo_deleted: "Photo deleted",
  photo_not_found: "No such photo",
  photo_not_restorable: "Cannot be restored",
  provider_auth_failed: "Service unavailable",
  provider_content_refused: "Not allowed",
  provider_misconfigured: "Service unavailable",
  provider_rate_limited: "Service busy",
  provider_rejected: "Could not process",
  provider_unavailable: "Service busy",
  queue_unavailable: "Temporary problem",
  quota_exceeded: "Daily limit reached",
  restore_attempt_not_found: "No such restoration",
  restore_error: "Something went wrong",
  restore_not_succeeded: "Not finished",
  retries_exhausted: "Gave up",
  stuck_in_processing: "Gave up",
  unauthenticated: "Sign in needed",
  unreadable_body: "Invalid request",
  unsupported_image: "Unsupported file",
  unsupported_media_type: "Unsupported file",
  upload_not_found: "No such upload",
  upload_too_large: "Photo too large",
};

const api = createClient<paths>({ baseUrl: "http://localhost:3000" });

function auth(token: string) {
  return { Authorization: `Bearer ${token}` };
}

export async function describePhoto(photoId: string, token: string): Promise<string> {
  const { data, error } = await api.GET("/photos/{photo_id}", {
    params: { path: { photo_id: photoId } },
    headers: auth(token),
  });
  if (error !== undefined) {
    // The function's ErrorBody, or one of API Gateway's own bodies (401, 413, 429).
    return "error" in error ? nextStep(error) : error.message;
  }
  // Always sent (null when it does not apply): no `?.` or `undefined` to handle.
  const selected: string | null = data.selected_restore_id;
  const expires: string | null = data.urls_expire_at;
  const latest = data.latest_attempt;
  const progress = latest === null ? "" : `${phaseText(latest.phase)} (${outcomeText(latest.outcome)})`;
  const why = latest?.error ? attemptErrorTitle[latest.error.code] : "";
  return [statusText(data.status), progress, why, selected ?? "", expires ?? ""].join(" ");
}

export async function requestRestore(photoId: string, token: string, key: string): Promise<Next | "accepted"> {
  const { data, error, response } = await api.POST("/photos/{photo_id}/restore", {
    params: { path: { photo_id: photoId }, header: { "idempotency-key": key } },
    headers: auth(token),
  });
  if (error === undefined) {
    const status: "processing" | Schemas["PhotoStatus"] = data.status;
    return status === "processing" ? "accepted" : "give_up";
  }
  if (!("error" in error)) {
    return "retry_later"; // API Gateway's throttling (429) or its 401/413
  }
  if (error.error === "quota_exceeded") {
    const seconds: number | undefined = error.retry_after_seconds;
    console.log(`again in ${seconds ?? response.headers.get("Retry-After")} s`);
  }
  return nextStep(error);
}

export async function allAttempts(photoId: string, token: string): Promise<string[]> {
  const ids: string[] = [];
  let cursor: string | null = null;
  do {
    const query: { limit: number; cursor?: string } =
      cursor === null ? { limit: 100 } : { limit: 100, cursor };
    const { data, error } = await api.GET("/photos/{photo_id}/restores", {
      params: { path: { photo_id: photoId }, query },
      headers: auth(token),
    });
    if (error !== undefined) {
      throw new Error("error" in error ? error.error : error.message);
    }
    ids.push(...data.restores.map((attempt) => attempt.restore_attempt_id));
    cursor = data.next_cursor; // string | null: always sent, null on the last page
  } while (cursor !== null);
  return ids;
}

export async function select(photoId: string, attemptId: string, token: string): Promise<string> {
  const { data, error } = await api.PUT("/photos/{photo_id}/selected-restore", {
    params: { path: { photo_id: photoId } },
    body: { restore_attempt_id: attemptId },
    headers: auth(token),
  });
  if (error !== undefined) {
    return "error" in error ? nextStep(error) : error.message;
  }
  return data.selected_restore_id;
}

export async function cancel(photoId: string, token: string): Promise<string> {
  const { data, error } = await api.DELETE("/photos/{photo_id}/restore", {
    params: { path: { photo_id: photoId } },
    headers: auth(token),
  });
  if (error !== undefined) {
    return "error" in error ? nextStep(error) : error.message;
  }
  return statusText(data.status);
}
