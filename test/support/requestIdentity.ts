/**
 * The request_time and request_id of a new request, as a merchant builds them: the id is the
 * time's 14 digits and a 6-digit counter that starts at a random point, so ids are unique within
 * this process and rarely meet another process's.
 */
import { randomInt } from "node:crypto";
import { BusinessClock, idPrefix } from "../../services/shared/orders/time.js";

export const clock = new BusinessClock("Asia/Shanghai");
let counter = randomInt(0, 1_000_000);

/** request_time `offsetSeconds` from now (negative: in the past) and a request_id starting with it. */
export function requestIdentity(offsetSeconds = 0): { requestTime: string; requestId: string } {
  const requestTime = offsetSeconds === 0 ? clock.current() : clock.secondsAhead(offsetSeconds);
  counter = (counter + 1) % 1_000_000;
  return { requestTime, requestId: idPrefix(requestTime) + String(counter).padStart(6, "0") };
}

/** The same, with the JSON field names (request_time, request_id). */
export function requestIdentityJson(offsetSeconds = 0): { request_time: string; request_id: string } {
  const { requestTime, requestId } = requestIdentity(offsetSeconds);
  return { request_time: requestTime, request_id: requestId };
}
