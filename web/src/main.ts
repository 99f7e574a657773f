// Entry point: the lobby, then the meeting, then the "you left / meeting ended" screen.
import { RequestError } from './errors';
import { Room, type ExitKind } from './room';
import { $ } from './ui/dom';
import { Lobby, forgetDevToken, type JoinRequest } from './ui/lobby';

declare global {
  interface Window {
    meetDebug?: Record<string, unknown>;
  }
}

let room: Room | null = null;

function showEnded(kind: ExitKind, text: string, meetingId: string): void {
  room = null;
  $('#meeting').hidden = true;
  $('#lobby').hidden = true;
  $('#ended').hidden = false;
  document.body.classList.remove('panel-open');
  $('#ended-title').textContent = kind === 'left' ? 'You left the meeting' : 'The meeting has ended';
  $('#ended-text').textContent = text;
  const rejoin = $<HTMLButtonElement>('#rejoin-btn');
  rejoin.hidden = kind !== 'left';
  rejoin.onclick = () => {
    location.href = `/?m=${encodeURIComponent(meetingId)}`;
  };
  $<HTMLButtonElement>('#home-btn').onclick = () => {
    location.href = '/';
  };
  (kind === 'left' ? rejoin : $<HTMLButtonElement>('#home-btn')).focus();
  document.title = 'Meet';
}

async function join(req: JoinRequest): Promise<void> {
  try {
    room = await Room.join(req, (kind, text) => showEnded(kind, text, req.meetingId));
  } catch (e) {
    if (e instanceof RequestError && e.code === 'UNAUTHORIZED' && req.devToken) forgetDevToken();
    lobby.reclaim();
    throw e;
  }
  lobby.hide();
  window.meetDebug = room.debug();
}

const lobby = new Lobby(join);
lobby.show();
