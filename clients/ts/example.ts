// A typed socket.io-client against meet-server, using the generated contract. `npx tsc --noEmit -p clients/ts`
// checks it (scripts/test): if a payload struct in crates/proto changes, src/index.ts is regenerated and this
// example (like web/src) stops compiling until it is updated.
import { io, type Socket } from 'socket.io-client';
import type {
  ClientToServerEvents,
  MeetingState,
  NewMessage,
  ServerToClientEvents,
  WireError,
} from './src/index.ts';
import { ERROR_CODES, REACTION_EMOJI } from './src/index.ts';

export function connect(url: string, token: string): Socket<ServerToClientEvents, ClientToServerEvents> {
  const socket: Socket<ServerToClientEvents, ClientToServerEvents> = io(url, { auth: { token } });

  socket.on('meeting-state', (state: MeetingState) => {
    const names: string[] = state.participants.map((p) => p.userName);
    console.log(`in ${state.meetingId} as ${state.you.role} with`, names, 'layout', state.layout);
  });
  socket.on('participant-joined', (p) => console.log(p.userName, 'joined;', p.participantCount, 'here'));
  socket.on('new-message', (m: NewMessage) => console.log(`${m.sender_name}: ${m.message} (${m.recipient_type})`));
  socket.on('new-producer', (p) => console.log('producer', p.producerId, p.kind, p.source));
  socket.on('error', (e: WireError) => {
    const known: boolean = ERROR_CODES.includes(e.code);
    console.warn(e.code, e.message, e.event, known);
  });

  socket.emit('join-meeting', { meetingId: 'meeting_abc123' }, (res) => {
    if (!res.ok) {
      console.warn('join refused:', res.error.code);
      return;
    }
    console.log('joined as', res.participantId, res.you.role);
    socket.emit('reaction:send', { meetingId: res.meetingId, emoji: REACTION_EMOJI[0] });
    socket.emit('send-message', { meetingId: res.meetingId, message: 'hello', recipientType: 'all' }, (ack) => {
      if (ack.ok) console.log('sent', ack.id, ack.timestamp);
    });
    socket.emit('create-transport', { meetingId: res.meetingId, direction: 'recv' }, (ack) => {
      if (ack.ok) console.log('transport', ack.params.id, ack.params.iceParameters.iceLite);
    });
  });
  return socket;
}
