//! The signalling path for media parameters: fuzz input as JSON `rtpParameters` (and as `rtpCapabilities`) through
//! the ORTC algebra, the rebuilt SDP offer (which str0m must parse), and `Core::produce` (which applies that offer
//! with str0m's `accept_offer`) followed by `consume` and `close_producer`. Must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sfu::ortc::{self, Kind};
use sfu::sdp::{self, Section};
use sfu::{RtpCapabilities, RtpParameters};
use sfu_fuzz::{Fixture, FAKE_FINGERPRINT, REMOTE_UFRAG};
use str0m::change::SdpOffer;

fn offer_parses(mapping: &ortc::ProducerMapping) {
    let mid = mapping.mid.clone().unwrap_or_else(|| "0".to_owned());
    let fp = format!("sha-256 {FAKE_FINGERPRINT}");
    for closed in [false, true] {
        let sections = [Section { mid: mid.clone(), mapping: mapping.clone(), closed }];
        if let Some(text) = sdp::build_offer(&sections, REMOTE_UFRAG, &fp, 2) {
            let _ = SdpOffer::from_sdp_string(&text);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let router = ortc::router_capabilities();
    if let Ok(rtp) = serde_json::from_slice::<RtpParameters>(data) {
        let _ = serde_json::to_vec(&rtp);
        for kind in [Kind::Audio, Kind::Video] {
            let Ok(mapping) = ortc::map_producer(kind, &rtp) else { continue };
            let _ = ortc::can_consume(&mapping, &router);
            if let Ok((params, _)) = ortc::consumer_parameters(&mapping, &router, "0", 1234, Some(1235)) {
                let _ = serde_json::to_vec(&params);
            }
            offer_parses(&mapping);
            // The real thing: produce on a connected send transport (applies the rebuilt offer), consume, close.
            let mut f = Fixture::new(false);
            if let Ok(pid) = f.core.produce(&f.send.id, kind, &rtp) {
                let _ = f.core.consume(&f.recv.id, &pid, &router);
                f.core.drain_dirty(f.now);
                let _ = f.core.close_producer(&pid);
            }
            f.flush();
        }
    }
    // The same bytes as a device's capabilities, against realistic producers.
    if let Ok(caps) = serde_json::from_slice::<RtpCapabilities>(data) {
        for (kind, v) in [(Kind::Audio, sfu_fuzz::chrome_opus()), (Kind::Video, sfu_fuzz::chrome_vp8_simulcast())] {
            let Ok(rtp) = serde_json::from_value::<RtpParameters>(v) else { continue };
            let Ok(mapping) = ortc::map_producer(kind, &rtp) else { continue };
            let _ = ortc::can_consume(&mapping, &caps);
            let _ = ortc::consumer_parameters(&mapping, &caps, "7", 1, None);
            let _ = ortc::consumer_parameters(&mapping, &caps, "7", 1, Some(2));
        }
    }
});
