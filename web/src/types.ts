// Wire types of meet-server: the generated contract (clients/ts, from the Rust payload structs in crates/proto),
// under the names this client uses. `tsc --noEmit` (web/build.sh) fails here when the server's shapes change and
// the client was not updated.
import type * as C from '../../clients/ts/src/index';
import { REACTION_EMOJI } from '../../clients/ts/src/index';

export type Role = C.Role;
export type Layout = C.Layout;
export type Source = C.Source;
export type Kind = C.MediaKind;
export type RecipientType = C.RecipientType;
export type Quality = C.Quality;
export type ProducerInfo = C.ProducerSummary;
/** The client also builds participants from presence events, which carry no `joinedAt`. */
export type ParticipantInfo = Omit<C.ParticipantSummary, 'joinedAt'> & { joinedAt?: string };
export type ChatMessage = C.NewMessage;
export type MeetingSettings = C.MeetingSettings;
export type MeetingState = C.MeetingState;
export type Meeting = C.MeetingView;
/** Codes this client makes up for failures that never reached the server, besides the server's `ErrorCode`s. */
export type ClientErrorCode = 'NETWORK' | 'DISCONNECTED' | 'ACK_TIMEOUT' | 'NO_DEV_TOKENS' | 'BAD_TOKEN' | 'NO_NAME' | `HTTP_${number}`;
export type WireError = Omit<C.WireError, 'code'> & { code: C.ErrorCode | ClientErrorCode };
export type Actor = C.UserRef;
export type TransportParams = C.TransportParams;
export type Subscribed = C.Subscribed;
export type NewProducer = C.NewProducer;
export type ProducerState = C.ProducerPaused;

/** Recording events: not in the contract yet (this server answers `recording:*` with NOT_SUPPORTED); the UI
 *  listens so it follows once the server emits them. */
interface RecordingEvents {
  'recording:started': { meetingId: string; hostName?: string };
  'recording:stopped': { meetingId: string };
  'recording:paused': { meetingId: string };
  'recording:resumed': { meetingId: string };
}

/** Events the server sends (name → payload). */
export type ServerEvents = C.ServerEvents & RecordingEvents;

/** Requests the client sends (name → payload). Every one is answered with an ack. */
export type Requests = C.Requests;

/** What each request's successful ack carries besides `ok: true`. */
export type ReplyOf<E extends keyof Requests> = C.Replies[E];

export const REACTIONS = REACTION_EMOJI;
