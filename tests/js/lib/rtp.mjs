// The rtpParameters (and dtlsParameters) the media tests signal: what mediasoup-client 3.24 sends for Chrome's
// microphone and a non-simulcast camera. Media itself is proven in tests/browser.

/** Opus on `mid`, one encoding with `ssrc`. */
export const opus = (mid, ssrc = 11111111) => ({
  mid,
  codecs: [{ mimeType: 'audio/opus', payloadType: 111, clockRate: 48000, channels: 2,
    parameters: { minptime: 10, useinbandfec: 1 }, rtcpFeedback: [{ type: 'transport-cc', parameter: '' }] }],
  headerExtensions: [
    { uri: 'urn:ietf:params:rtp-hdrext:ssrc-audio-level', id: 1, encrypt: false, parameters: {} },
    { uri: 'http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01', id: 3, encrypt: false, parameters: {} },
    { uri: 'urn:ietf:params:rtp-hdrext:sdes:mid', id: 4, encrypt: false, parameters: {} },
  ],
  encodings: [{ ssrc, dtx: false }],
  rtcp: { cname: 'abcd', reducedSize: true },
});

/** VP8 with RTX on `mid`, one encoding with `ssrc` (RTX on ssrc + 1). */
export const vp8 = (mid, ssrc = 22222222) => ({
  mid,
  codecs: [
    { mimeType: 'video/VP8', payloadType: 96, clockRate: 90000, parameters: {},
      rtcpFeedback: [{ type: 'nack', parameter: '' }, { type: 'nack', parameter: 'pli' }, { type: 'transport-cc', parameter: '' }] },
    { mimeType: 'video/rtx', payloadType: 97, clockRate: 90000, parameters: { apt: 96 }, rtcpFeedback: [] },
  ],
  headerExtensions: [
    { uri: 'urn:ietf:params:rtp-hdrext:sdes:mid', id: 4, encrypt: false, parameters: {} },
    { uri: 'http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01', id: 3, encrypt: false, parameters: {} },
  ],
  encodings: [{ ssrc, rtx: { ssrc: ssrc + 1 } }],
  rtcp: { cname: 'abcd', reducedSize: true },
});

/** A `{role, fingerprints}` with a well-formed sha-256 fingerprint (DTLS never runs in these tests). */
export function dtlsParameters(byte = 'AB') {
  return { role: 'client', fingerprints: [{ algorithm: 'sha-256', value: Array.from({ length: 32 }, () => byte).join(':') }] };
}
