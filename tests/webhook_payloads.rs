//! The WhatsApp webhook: realistic Cloud API payloads in, exact events out.
//! Every event a test produces is also checked against the std declarations
//! (`std_actions/whatsapp.flow`), so the parser and the declared triggers
//! cannot drift apart: each message type (text, template quick reply,
//! button and list replies, every media kind, location, contacts,
//! reaction, unsupported, unknown) gives `whatsapp.message_received` with
//! every declared field, `kind`, `reply_id`, `media_id`, `filename`,
//! `replied_to` and the rest included.

use std::collections::{BTreeSet, HashMap};

use flowc::check::{Compiler, Schemas};
use flowc::config::Config;
use flowc::runtime::Event;
use flowc::serve::webhook::{
    conversation_started_from, parse_host_event, parse_payload, signature_header, verify_handshake,
    verify_signature, HandshakeError, InboundEvent, InboundKind, Parsed, PayloadError,
    PayloadWarning, SenderDirectory, SignatureError, SkipReason,
};
use flowc::source::FileId;
use serde_json::{json, Value as Json};

const BERLIN_ID: &str = "106540352242922";
const MUNICH_ID: &str = "106540352243011";
const ANNA: &str = "4915112345678";
const JONAS: &str = "436641234567";
const WAMID_1: &str = "wamid.HBgNNDkxNTExMjM0NTY3OBUCABIYFjNFQjBDMUE3";
const WAMID_2: &str = "wamid.HBgNNDkxNTExMjM0NTY3OBUCABIYFjRGQzFEMkI4";
const SENT_WAMID: &str = "wamid.HBgNNDkxNTExMjM0NTY3OBUCABEYEjQ2QkQ5RjU2RDBEQzNBNEY2AA==";
/// 1764000000 = 2025-11-24T16:00:00Z.
const T0: &str = "1764000000";
const T0_RFC: &str = "2025-11-24T16:00:00Z";

fn schemas() -> Schemas {
    Compiler::new()
        .check()
        .program
        .expect("std declarations check")
        .schemas()
        .clone()
}

fn senders() -> SenderDirectory {
    let text = format!(
        "[senders.berlin-office]\nphone_number_id = \"{BERLIN_ID}\"\n\n\
         [senders.munich-office]\nphone_number_id = \"{MUNICH_ID}\"\n"
    );
    let (config, diagnostics) = Config::parse(&text, FileId(0));
    assert!(diagnostics.is_empty(), "{diagnostics:?}");
    SenderDirectory::from_config(&config)
}

/// A webhook body with one `messages` change of the Berlin number.
fn webhook(value: Json) -> Vec<u8> {
    webhook_for(BERLIN_ID, value)
}

fn webhook_for(phone_number_id: &str, mut value: Json) -> Vec<u8> {
    let map = value.as_object_mut().unwrap();
    map.insert("messaging_product".into(), json!("whatsapp"));
    map.insert(
        "metadata".into(),
        json!({"display_phone_number": "4930901820", "phone_number_id": phone_number_id}),
    );
    serde_json::to_vec(&json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": value}]}]
    }))
    .unwrap()
}

/// Anna's message (contacts included) in a webhook body.
fn from_anna(message: Json) -> Vec<u8> {
    webhook(json!({
        "contacts": [{"profile": {"name": "Anna Schmidt"}, "wa_id": ANNA}],
        "messages": [message],
    }))
}

/// Parses and checks every event against the std schemas.
fn parse(body: &[u8]) -> Parsed {
    let parsed = parse_payload(body, &senders()).expect("payload parses");
    let schemas = schemas();
    for inbound in &parsed.events {
        assert_declared(&schemas, &inbound.event);
        if let Some(started) = inbound.conversation_started() {
            assert_declared(&schemas, &started.event);
        }
    }
    parsed
}

/// The event converts with its trigger's schema, and carries exactly the
/// declared fields (optional ones as `null`), no more and no fewer.
fn assert_declared(schemas: &Schemas, event: &Event) {
    if let Err(e) = event.to_value(schemas) {
        panic!("{} does not fit its declaration: {e}", event.trigger);
    }
    let declared: BTreeSet<&str> = schemas.triggers[&event.trigger]
        .fields
        .fields
        .iter()
        .map(|f| f.name.as_str())
        .collect();
    let produced: BTreeSet<&str> = event.fields.keys().map(String::as_str).collect();
    assert_eq!(produced, declared, "fields of {}", event.trigger);
}

/// The one event of a payload without warnings.
fn only_event(body: &[u8]) -> InboundEvent {
    let parsed = parse(body);
    assert_eq!(parsed.warnings, vec![], "warnings");
    assert_eq!(parsed.events.len(), 1, "{:#?}", parsed.events);
    parsed.events.into_iter().next().unwrap()
}

/// A received text message's event.
fn received(id: &str, text: &str, name: Option<&str>) -> Event {
    received_with(id, text, name, json!({}))
}

/// A received message's event: a text message's fields, with `changes`
/// (e.g. `kind`, `media_id`) put over them.
fn received_with(id: &str, text: &str, name: Option<&str>, changes: Json) -> Event {
    let mut fields = json!({
        "phone": "+4915112345678",
        "text": text,
        "sender_id": "berlin-office",
        "timestamp": T0_RFC,
        "conversation_id": "4915112345678:berlin-office",
        "message_id": id,
        "name": name,
        "kind": "text",
        "reply_id": null,
        "reply_title": null,
        "media_id": null,
        "mime_type": null,
        "filename": null,
        "replied_to": null,
    });
    for (key, value) in changes.as_object().unwrap() {
        assert!(fields.get(key).is_some(), "{key} is no field");
        fields[key] = value.clone();
    }
    Event::new("whatsapp.message_received", fields)
}

/// Anna's message is the one event, with `text` and `changes` over a text
/// message's fields.
fn assert_received(body: &[u8], text: &str, changes: Json) {
    let inbound = only_event(body);
    assert_eq!(inbound.id, WAMID_1);
    assert_eq!(inbound.kind, InboundKind::MessageReceived);
    assert_eq!(
        inbound.event,
        received_with(WAMID_1, text, Some("Anna Schmidt"), changes)
    );
}

fn message(kind: &str, content: Json) -> Json {
    let mut message = json!({"from": ANNA, "id": WAMID_1, "timestamp": T0, "type": kind});
    if !content.is_null() {
        message[kind] = content;
    }
    message
}

// ---------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------

#[test]
fn text_message() {
    assert_received(
        &from_anna(message(
            "text",
            json!({"body": "What does the premium plan cost?"}),
        )),
        "What does the premium plan cost?",
        json!({}),
    );
}

#[test]
fn a_quoted_text_message_names_what_it_replied_to() {
    let mut quoted = message("text", json!({"body": "Is this still valid?"}));
    quoted["context"] = json!({"from": "4930901820", "id": SENT_WAMID});
    assert_received(
        &from_anna(quoted),
        "Is this still valid?",
        json!({"replied_to": SENT_WAMID}),
    );
}

#[test]
fn template_quick_reply_button() {
    let mut reply = message(
        "button",
        json!({"payload": "CONFIRM", "text": "Yes, confirm"}),
    );
    reply["context"] = json!({"from": "4930901820", "id": SENT_WAMID});
    assert_received(
        &from_anna(reply),
        "Yes, confirm",
        json!({"kind": "reply", "reply_id": "CONFIRM", "reply_title": "Yes, confirm",
               "replied_to": SENT_WAMID}),
    );
}

#[test]
fn a_quick_reply_without_payload_uses_its_text() {
    let reply = message("button", json!({"text": "Yes, confirm"}));
    assert_received(
        &from_anna(reply),
        "Yes, confirm",
        json!({"kind": "reply", "reply_id": "Yes, confirm", "reply_title": "Yes, confirm"}),
    );
}

#[test]
fn interactive_button_reply() {
    let mut reply = message(
        "interactive",
        json!({"type": "button_reply", "button_reply": {"id": "reschedule", "title": "Another time"}}),
    );
    reply["context"] = json!({"from": "4930901820", "id": SENT_WAMID});
    assert_received(
        &from_anna(reply),
        "Another time",
        json!({"kind": "reply", "reply_id": "reschedule", "reply_title": "Another time",
               "replied_to": SENT_WAMID}),
    );
}

#[test]
fn interactive_list_reply() {
    let reply = message(
        "interactive",
        json!({"type": "list_reply",
               "list_reply": {"id": "basic", "title": "Basic", "description": "19 EUR / month"}}),
    );
    assert_received(
        &from_anna(reply),
        "Basic",
        json!({"kind": "reply", "reply_id": "basic", "reply_title": "Basic"}),
    );
}

#[test]
fn a_reply_without_id_names_the_path() {
    let reply = message(
        "interactive",
        json!({"type": "button_reply", "button_reply": {"title": "Yes"}}),
    );
    assert_eq!(
        error_of(&from_anna(reply)).to_string(),
        "`entry[0].changes[0].value.messages[0].interactive.button_reply.id` is missing"
    );
}

#[test]
fn image_with_caption() {
    let image = message(
        "image",
        json!({"caption": "The scratch on the door", "mime_type": "image/jpeg",
               "sha256": "u6L0vJmVdkuwTcVr4Tu5uH0cKSY4bbvB1xUpAOtY1Wc=", "id": "1481736359372283"}),
    );
    assert_received(
        &from_anna(image),
        "The scratch on the door",
        json!({"kind": "image", "media_id": "1481736359372283", "mime_type": "image/jpeg"}),
    );
}

#[test]
fn document_with_filename_and_without_caption() {
    let document = message(
        "document",
        json!({"filename": "invoice-1234.pdf", "mime_type": "application/pdf",
               "sha256": "Y2Fuc3QgYmUgdG9vIGNhcmVmdWw=", "id": "2049781235391725"}),
    );
    assert_received(
        &from_anna(document),
        "",
        json!({"kind": "document", "media_id": "2049781235391725",
               "mime_type": "application/pdf", "filename": "invoice-1234.pdf"}),
    );
}

#[test]
fn audio_video_and_sticker_carry_their_media() {
    assert_received(
        &from_anna(message(
            "audio",
            json!({"mime_type": "audio/ogg; codecs=opus", "id": "1", "voice": true}),
        )),
        "",
        json!({"kind": "audio", "media_id": "1", "mime_type": "audio/ogg; codecs=opus"}),
    );
    assert_received(
        &from_anna(message(
            "sticker",
            json!({"mime_type": "image/webp", "id": "2", "animated": false}),
        )),
        "",
        json!({"kind": "sticker", "media_id": "2", "mime_type": "image/webp"}),
    );
    assert_received(
        &from_anna(message(
            "video",
            json!({"caption": "See?", "id": "3", "mime_type": "video/mp4"}),
        )),
        "See?",
        json!({"kind": "video", "media_id": "3", "mime_type": "video/mp4"}),
    );
}

#[test]
fn a_caption_or_file_name_where_the_kind_has_none_is_ignored() {
    assert_received(
        &from_anna(message(
            "audio",
            json!({"id": "1", "caption": "x", "filename": "y.ogg"}),
        )),
        "",
        json!({"kind": "audio", "media_id": "1"}),
    );
}

#[test]
fn a_media_id_of_the_wrong_type_names_the_path() {
    let image = message("image", json!({"id": 1481736359372283u64}));
    assert_eq!(
        error_of(&from_anna(image)).to_string(),
        "`entry[0].changes[0].value.messages[0].image.id` should be a string, found a number"
    );
}

#[test]
fn location_has_empty_text() {
    let location = message(
        "location",
        json!({"latitude": 52.520008, "longitude": 13.404954,
               "name": "Alexanderplatz", "address": "10178 Berlin"}),
    );
    assert_received(&from_anna(location), "", json!({"kind": "location"}));
}

#[test]
fn reaction_has_empty_text() {
    let reaction = message(
        "reaction",
        json!({"message_id": SENT_WAMID, "emoji": "\u{1F44D}"}),
    );
    assert_received(&from_anna(reaction), "", json!({"kind": "reaction"}));
}

#[test]
fn unsupported_message_has_empty_text() {
    let mut unsupported = message("unsupported", json!({"type": "poll_creation"}));
    unsupported["errors"] = json!([{"code": 131051, "title": "Message type unknown",
        "message": "Message type unknown",
        "error_data": {"details": "Message type is currently not supported."}}]);
    assert_received(&from_anna(unsupported), "", json!({"kind": "unsupported"}));
}

#[test]
fn contacts_and_unknown_types() {
    assert_received(
        &from_anna(message(
            "contacts",
            json!([{"name": {"formatted_name": "Jonas Becker"},
                    "phones": [{"phone": "+43 664 1234567", "type": "CELL"}]}]),
        )),
        "",
        json!({"kind": "contacts"}),
    );
    assert_received(
        &from_anna(message("a_type_from_the_future", json!({"anything": 1}))),
        "",
        json!({"kind": "unsupported"}),
    );
    assert_received(
        &from_anna(message(
            "order",
            json!({"catalog_id": "1", "text": "For Friday", "product_items": []}),
        )),
        "For Friday",
        json!({"kind": "unsupported"}),
    );
}

#[test]
fn flow_replies_are_unsupported_with_their_body() {
    assert_received(
        &from_anna(message(
            "interactive",
            json!({"type": "nfm_reply", "nfm_reply": {"name": "flow", "body": "Sent",
                   "response_json": "{\"plan\": \"basic\"}"}}),
        )),
        "Sent",
        json!({"kind": "unsupported"}),
    );
}

#[test]
fn a_reply_starts_a_conversation_with_its_own_fields() {
    let inbound = only_event(&from_anna(message(
        "interactive",
        json!({"type": "button_reply", "button_reply": {"id": "confirm", "title": "Yes"}}),
    )));
    let started = inbound.conversation_started().unwrap();
    assert_eq!(started.event.fields["text"], "Yes");
    assert!(!started.event.fields.contains_key("reply_id"));
    assert_declared(&schemas(), &started.event);
}

#[test]
fn two_messages_in_one_payload() {
    let body = webhook(json!({
        "contacts": [
            {"profile": {"name": "Anna Schmidt"}, "wa_id": ANNA},
            {"profile": {"name": ""}, "wa_id": JONAS},
        ],
        "messages": [
            {"from": ANNA, "id": WAMID_1, "timestamp": T0, "type": "text", "text": {"body": "Hi"}},
            {"from": JONAS, "id": WAMID_2, "timestamp": "1764000100", "type": "text",
             "text": {"body": "Servus"}},
        ],
    }));
    let parsed = parse(&body);
    assert_eq!(parsed.warnings, vec![]);
    let ids: Vec<&str> = parsed.events.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, [WAMID_1, WAMID_2]);
    assert_eq!(
        parsed.events[0].event,
        received(WAMID_1, "Hi", Some("Anna Schmidt"))
    );
    // An empty profile name is no name.
    assert_eq!(
        parsed.events[1].event,
        received_with(
            WAMID_2,
            "Servus",
            None,
            json!({
                "phone": "+436641234567",
                "timestamp": "2025-11-24T16:01:40Z",
                "conversation_id": "436641234567:berlin-office",
            }),
        )
    );
}

#[test]
fn a_message_without_contacts_has_no_name() {
    let body = webhook(json!({"messages": [message("text", json!({"body": "Hi"}))]}));
    assert_eq!(only_event(&body).event, received(WAMID_1, "Hi", None));
}

#[test]
fn the_sender_follows_the_phone_number_id() {
    let body = webhook_for(
        MUNICH_ID,
        json!({"messages": [message("text", json!({"body": "Hi"}))]}),
    );
    let event = only_event(&body).event;
    assert_eq!(event.fields["sender_id"], "munich-office");
    assert_eq!(
        event.fields["conversation_id"],
        "4915112345678:munich-office"
    );
}

#[test]
fn unknown_keys_are_ignored() {
    let mut msg = message("text", json!({"body": "Hi", "preview_url": false}));
    msg["from_user_id"] = json!("DE.1502576394655843");
    msg["brand_new_field"] = json!({"nested": [1, 2]});
    let body = webhook(json!({
        "contacts": [{"profile": {"name": "Anna Schmidt", "username": "anna"}, "wa_id": ANNA,
                      "user_id": "DE.1502576394655843"}],
        "messages": [msg],
        "another_new_field": true,
    }));
    assert_eq!(
        only_event(&body).event,
        received(WAMID_1, "Hi", Some("Anna Schmidt"))
    );
}

#[test]
fn a_number_timestamp_is_accepted() {
    let mut msg = message("text", json!({"body": "Hi"}));
    msg["timestamp"] = json!(1764000000);
    assert_eq!(
        only_event(&from_anna(msg)).event.fields["timestamp"],
        T0_RFC
    );
}

// ---------------------------------------------------------------------------
// Conversation started
// ---------------------------------------------------------------------------

#[test]
fn conversation_started_is_built_from_the_received_message() {
    let inbound = only_event(&from_anna(message("text", json!({"body": "Hello!"}))));
    let started = inbound.conversation_started().unwrap();
    assert_eq!(started.id, format!("{WAMID_1}:started"));
    assert_eq!(started.kind, InboundKind::ConversationStarted);
    let expected = Event::new(
        "whatsapp.conversation_started",
        json!({
            "phone": "+4915112345678",
            "text": "Hello!",
            "sender_id": "berlin-office",
            "sender_phone": null,
            "conversation_id": "4915112345678:berlin-office",
            "timestamp": T0_RFC,
            "name": "Anna Schmidt",
        }),
    );
    assert_eq!(started.event, expected);
    assert_eq!(conversation_started_from(&inbound.event), expected);
    assert_declared(&schemas(), &expected);
}

#[test]
fn only_messages_start_conversations() {
    let status = only_event(&webhook(json!({"statuses": [
        {"id": SENT_WAMID, "status": "read", "timestamp": T0, "recipient_id": ANNA}
    ]})));
    assert_eq!(status.conversation_started(), None);
}

// ---------------------------------------------------------------------------
// Statuses
// ---------------------------------------------------------------------------

fn status_event(status: &str, timestamp: &str, conversation: Option<&str>) -> Event {
    Event::new(
        "whatsapp.message_status",
        json!({
            "message_id": SENT_WAMID,
            "phone": "+4915112345678",
            "sender_id": "berlin-office",
            "status": status,
            "timestamp": timestamp,
            "error_kind": null,
            "error_message": null,
            "conversation_id": conversation,
        }),
    )
}

#[test]
fn statuses_sent_delivered_read() {
    let body = webhook(json!({"statuses": [
        {"id": SENT_WAMID, "status": "sent", "timestamp": T0, "recipient_id": ANNA,
         "conversation": {"id": "a75d17ad06104c51166f948319b03c6a", "expiration_timestamp": "1764086400",
                          "origin": {"type": "utility"}},
         "pricing": {"billable": true, "pricing_model": "CBP", "category": "utility"}},
        {"id": SENT_WAMID, "status": "delivered", "timestamp": "1764000100", "recipient_id": ANNA,
         "conversation": {"id": "a75d17ad06104c51166f948319b03c6a", "origin": {"type": "utility"}},
         "pricing": {"billable": true, "pricing_model": "PMP", "type": "regular", "category": "utility"}},
        {"id": SENT_WAMID, "status": "read", "timestamp": "1764000200", "recipient_id": ANNA},
    ]}));
    let parsed = parse(&body);
    assert_eq!(parsed.warnings, vec![]);
    let ids: Vec<&str> = parsed.events.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            format!("{SENT_WAMID}:sent"),
            format!("{SENT_WAMID}:delivered"),
            format!("{SENT_WAMID}:read"),
        ]
    );
    assert!(parsed
        .events
        .iter()
        .all(|e| e.kind == InboundKind::MessageStatus));
    let events: Vec<Event> = parsed.events.into_iter().map(|e| e.event).collect();
    assert_eq!(
        events,
        [
            status_event("sent", T0_RFC, Some("a75d17ad06104c51166f948319b03c6a")),
            status_event(
                "delivered",
                "2025-11-24T16:01:40Z",
                Some("a75d17ad06104c51166f948319b03c6a")
            ),
            status_event("read", "2025-11-24T16:03:20Z", None),
        ]
    );
}

fn failed(errors: Json) -> InboundEvent {
    let mut status =
        json!({"id": SENT_WAMID, "status": "failed", "timestamp": T0, "recipient_id": ANNA});
    if !errors.is_null() {
        status["errors"] = errors;
    }
    only_event(&webhook(json!({"statuses": [status]})))
}

#[test]
fn failed_outside_the_window() {
    let inbound = failed(json!([{
        "code": 131047, "title": "Re-engagement message", "message": "Re-engagement message",
        "error_data": {"details": "Message failed to send because more than 24 hours have passed since the customer last replied to this number."},
        "href": "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/"
    }]));
    assert_eq!(inbound.id, format!("{SENT_WAMID}:failed"));
    assert_eq!(
        inbound.event,
        Event::new(
            "whatsapp.message_status",
            json!({
                "message_id": SENT_WAMID,
                "phone": "+4915112345678",
                "sender_id": "berlin-office",
                "status": "failed",
                "timestamp": T0_RFC,
                "error_kind": "OutsideWindow",
                "error_message": "+4915112345678 has not written in the last 24 hours: free text is outside the window, use a template",
                "conversation_id": null,
            }),
        )
    );
}

#[test]
fn failed_statuses_map_meta_codes_like_failed_sends() {
    let kind_and_message = |errors: Json| {
        let event = failed(errors).event;
        (
            event.fields["error_kind"].as_str().unwrap().to_string(),
            event.fields["error_message"].as_str().unwrap().to_string(),
        )
    };
    let (kind, message) =
        kind_and_message(json!([{"code": 131026, "title": "Message undeliverable",
        "error_data": {"details": "Message Undeliverable."}}]));
    assert_eq!(kind, "Undeliverable");
    assert!(message.contains("131026"), "{message}");
    assert!(message.contains("Message Undeliverable."), "{message}");

    // The template kinds survive although a status does not name the template.
    let (kind, message) =
        kind_and_message(json!([{"code": 132015, "title": "Template is Paused"}]));
    assert_eq!(kind, "TemplateNotFound");
    assert!(message.starts_with("the template is paused"), "{message}");

    let (kind, _) = kind_and_message(json!([{"code": 131056, "title": "Pair rate limit hit"}]));
    assert_eq!(kind, "RateLimited");

    let (kind, message) = kind_and_message(json!([{"code": 131049,
        "title": "This message was not delivered to maintain healthy ecosystem engagement."}]));
    assert_eq!(kind, "Undeliverable");
    assert!(message.contains("131049"), "{message}");

    // A media message WhatsApp could not fetch from its link.
    let (kind, message) = kind_and_message(json!([{"code": 131053, "title": "Media upload error",
        "error_data": {"details": "Downloading media from weblink failed with http code 403"}}]));
    assert_eq!(kind, "MediaError");
    assert!(message.contains("http code 403"), "{message}");

    // Without an error object, a failure is undeliverable.
    let (kind, message) = kind_and_message(Json::Null);
    assert_eq!(kind, "Undeliverable");
    assert_eq!(
        message,
        "undeliverable: WhatsApp could not deliver the message; no WhatsApp error code"
    );
}

// ---------------------------------------------------------------------------
// Skipped with warnings
// ---------------------------------------------------------------------------

#[test]
fn template_status_update_is_skipped() {
    let body = serde_json::to_vec(&json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "time": 1764000000, "changes": [{
            "field": "message_template_status_update",
            "value": {"event": "APPROVED", "message_template_id": 1689556908129832u64,
                      "message_template_name": "appointment_confirmed",
                      "message_template_language": "de", "reason": "NONE"}
        }]}]
    }))
    .unwrap();
    let parsed = parse(&body);
    assert_eq!(parsed.events, vec![]);
    assert_eq!(
        parsed.warnings,
        vec![PayloadWarning {
            path: "entry[0].changes[0]".into(),
            reason: SkipReason::IgnoredField {
                field: "message_template_status_update".into()
            },
        }]
    );
    assert_eq!(
        parsed.warnings[0].to_string(),
        "entry[0].changes[0]: change field `message_template_status_update` is not used; ignored"
    );
}

#[test]
fn unknown_phone_number_id_is_skipped_with_a_warning() {
    let body = webhook_for(
        "999999999999999",
        json!({
            "messages": [message("text", json!({"body": "Hi"}))],
            "statuses": [{"id": SENT_WAMID, "status": "read", "timestamp": T0, "recipient_id": ANNA}],
        }),
    );
    let parsed = parse(&body);
    assert_eq!(parsed.events, vec![]);
    let unknown = SkipReason::UnknownSender {
        phone_number_id: "999999999999999".into(),
    };
    assert_eq!(
        parsed.warnings,
        vec![
            PayloadWarning {
                path: "entry[0].changes[0].value.messages[0]".into(),
                reason: unknown.clone(),
            },
            PayloadWarning {
                path: "entry[0].changes[0].value.statuses[0]".into(),
                reason: unknown,
            },
        ]
    );
}

#[test]
fn known_and_skipped_changes_in_one_payload() {
    let body = serde_json::to_vec(&json!({
        "object": "whatsapp_business_account",
        "entry": [
            {"id": "102290129340398", "changes": [
                {"field": "phone_number_quality_update",
                 "value": {"display_phone_number": "4930901820", "event": "FLAGGED", "current_limit": "TIER_1K"}},
                {"field": "messages", "value": {
                    "messaging_product": "whatsapp",
                    "metadata": {"display_phone_number": "4930901820", "phone_number_id": BERLIN_ID},
                    "messages": [message("text", json!({"body": "Hi"}))]}},
            ]},
            {"id": "102290129340399", "changes": [
                {"field": "messages", "value": {
                    "messaging_product": "whatsapp",
                    "metadata": {"display_phone_number": "4989123456", "phone_number_id": MUNICH_ID},
                    "statuses": [{"id": SENT_WAMID, "status": "delivered", "timestamp": T0, "recipient_id": JONAS}]}},
            ]},
        ]
    }))
    .unwrap();
    let parsed = parse(&body);
    let ids: Vec<&str> = parsed.events.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(
        ids,
        [WAMID_1.to_string(), format!("{SENT_WAMID}:delivered")]
    );
    assert_eq!(parsed.events[1].event.fields["sender_id"], "munich-office");
    assert_eq!(parsed.events[1].event.fields["phone"], "+436641234567");
    // The quality update is no event: it is for the campaigns' guard.
    assert!(parsed.warnings.is_empty(), "{:?}", parsed.warnings);
    assert_eq!(parsed.quality_updates.len(), 1);
    assert_eq!(parsed.quality_updates[0].display_phone_number, "4930901820");
    assert_eq!(parsed.quality_updates[0].event.as_str(), "FLAGGED");
}

#[test]
fn an_unreadable_quality_update_is_skipped_with_a_warning() {
    let body = serde_json::to_vec(&json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [
            {"field": "phone_number_quality_update", "value": {"event": "FLAGGED"}},
        ]}]
    }))
    .unwrap();
    let parsed = parse(&body);
    assert!(parsed.quality_updates.is_empty());
    assert_eq!(parsed.warnings.len(), 1);
    assert_eq!(parsed.warnings[0].path, "entry[0].changes[0]");
    assert!(
        parsed.warnings[0]
            .to_string()
            .contains("quality update cannot be read"),
        "{}",
        parsed.warnings[0]
    );
}

#[test]
fn system_group_and_withheld_numbers_are_skipped() {
    let body = webhook(json!({
        "messages": [
            {"from": ANNA, "id": "wamid.sys", "timestamp": T0, "type": "system",
             "system": {"body": "User A changed from 4915112345678 to 4915187654321",
                        "wa_id": "4915187654321", "type": "user_changed_number"}},
            {"from": ANNA, "group_id": "Y2FwaV9ncm91cDoxNzA1NTU1MDEzOToxMjAzNjM0MDQ2OTQyMzM4MjAZD",
             "id": "wamid.group", "timestamp": T0, "type": "text", "text": {"body": "Hi all"}},
            {"from_user_id": "DE.1502576394655843", "id": "wamid.user", "timestamp": T0,
             "type": "text", "text": {"body": "Hi"}},
            {"from": "not-a-number", "id": "wamid.bad", "timestamp": T0, "type": "text",
             "text": {"body": "Hi"}},
        ],
        "statuses": [
            {"id": "wamid.s1", "status": "deleted", "timestamp": T0, "recipient_id": ANNA},
            {"id": "wamid.s2", "status": "sent", "timestamp": T0, "recipient_type": "group",
             "recipient_id": "Y2FwaV9ncm91cDoxNzA1NTU1MDEzOToxMjAzNjM0MDQ2OTQyMzM4MjAZD",
             "recipient_participant_id": ANNA},
            {"id": "wamid.s3", "status": "read", "timestamp": T0,
             "recipient_user_id": "DE.1502576394655843"},
        ],
        "errors": [{"code": 130429, "title": "Rate limit hit", "message": "Rate limit hit",
                    "error_data": {"details": "Message failed to send because there were too many messages sent from this phone number in a short period of time"}}],
    }));
    let parsed = parse(&body);
    assert_eq!(parsed.events, vec![]);
    let reasons: Vec<(String, SkipReason)> = parsed
        .warnings
        .into_iter()
        .map(|w| (w.path.replace("entry[0].changes[0].value.", ""), w.reason))
        .collect();
    let user = "DE.1502576394655843".to_string();
    assert_eq!(reasons[0].0, "errors[0]");
    assert!(
        matches!(&reasons[0].1, SkipReason::ErrorReported { description } if description.starts_with("RateLimited: ") && description.contains("130429")),
        "{:?}",
        reasons[0]
    );
    assert_eq!(
        reasons[1..],
        [
            (
                "messages[0]".to_string(),
                SkipReason::SystemMessage {
                    system_type: Some("user_changed_number".into())
                }
            ),
            ("messages[1]".to_string(), SkipReason::Group),
            (
                "messages[2]".to_string(),
                SkipReason::PhoneWithheld {
                    user_id: user.clone()
                }
            ),
            (
                "messages[3]".to_string(),
                SkipReason::NotAPhone {
                    value: "not-a-number".into()
                }
            ),
            (
                "statuses[0]".to_string(),
                SkipReason::UnknownStatus {
                    status: "deleted".into()
                }
            ),
            ("statuses[1]".to_string(), SkipReason::Group),
            (
                "statuses[2]".to_string(),
                SkipReason::PhoneWithheld { user_id: user }
            ),
        ]
    );
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

fn error_of(body: &[u8]) -> PayloadError {
    parse_payload(body, &senders()).expect_err("payload is refused")
}

#[test]
fn malformed_json_is_an_error() {
    let err = error_of(br#"{"object": "whatsapp_business_account", "entry": [{"#);
    assert!(matches!(err, PayloadError::Json(_)), "{err:?}");
    assert!(
        err.to_string().starts_with("the body is not valid JSON: "),
        "{err}"
    );
    assert_eq!(err.http_status(), 400);
    assert!(matches!(error_of(b""), PayloadError::Json(_)));
    assert_eq!(
        error_of(b"[1, 2]").to_string(),
        "the body should be an object, found a list"
    );
}

#[test]
fn missing_from_names_the_path() {
    let body = webhook(json!({"messages": [
        message("text", json!({"body": "first"})),
        {"id": WAMID_2, "timestamp": T0, "type": "text", "text": {"body": "second"}},
    ]}));
    let err = error_of(&body);
    assert_eq!(
        err,
        PayloadError::Missing {
            path: "entry[0].changes[0].value.messages[1].from".into()
        }
    );
    assert_eq!(
        err.to_string(),
        "`entry[0].changes[0].value.messages[1].from` is missing"
    );
}

#[test]
fn other_missing_or_wrong_keys_name_the_path() {
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            from_anna(message("text", json!({"preview_url": false}))),
            "`entry[0].changes[0].value.messages[0].text.body` is missing",
        ),
        (
            from_anna(message("button", json!({"payload": "CONFIRM"}))),
            "`entry[0].changes[0].value.messages[0].button.text` is missing",
        ),
        (
            from_anna(message("interactive", json!({"type": "list_reply", "list_reply": {"id": "basic"}}))),
            "`entry[0].changes[0].value.messages[0].interactive.list_reply.title` is missing",
        ),
        (
            from_anna(json!({"from": ANNA, "id": WAMID_1, "timestamp": true, "type": "text", "text": {"body": "x"}})),
            "`entry[0].changes[0].value.messages[0].timestamp` should be a string of Unix seconds, found a boolean",
        ),
        (
            from_anna(json!({"from": ANNA, "id": WAMID_1, "timestamp": "yesterday", "type": "text", "text": {"body": "x"}})),
            "`entry[0].changes[0].value.messages[0].timestamp`: \"yesterday\" is not a Unix time in seconds",
        ),
        (
            from_anna(json!({"from": 4915112345678u64, "id": WAMID_1, "timestamp": T0, "type": "text", "text": {"body": "x"}})),
            "`entry[0].changes[0].value.messages[0].from` should be a string, found a number",
        ),
        (
            webhook(json!({"statuses": [{"id": SENT_WAMID, "status": "sent", "timestamp": T0}]})),
            "`entry[0].changes[0].value.statuses[0].recipient_id` is missing",
        ),
        (
            webhook(json!({"statuses": [{"id": SENT_WAMID, "timestamp": T0, "recipient_id": ANNA}]})),
            "`entry[0].changes[0].value.statuses[0].status` is missing",
        ),
        (
            serde_json::to_vec(&json!({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [
                {"field": "messages", "value": {"messages": [message("text", json!({"body": "x"}))]}}]}]})).unwrap(),
            "`entry[0].changes[0].value.metadata` is missing",
        ),
        (
            serde_json::to_vec(&json!({"object": "whatsapp_business_account", "entry": [{"id": "1"}]})).unwrap(),
            "`entry[0].changes` is missing",
        ),
        (
            serde_json::to_vec(&json!({"object": "whatsapp_business_account"})).unwrap(),
            "`entry` is missing",
        ),
        (
            serde_json::to_vec(&json!({"entry": []})).unwrap(),
            "`object` is missing",
        ),
    ];
    for (body, expected) in cases {
        let err = error_of(&body);
        assert_eq!(err.to_string(), expected);
        assert_eq!(err.http_status(), 400);
    }
}

#[test]
fn wrong_object_is_refused_but_answered_with_200() {
    let body =
        br#"{"object": "page", "entry": [{"id": "1", "time": 1764000000, "messaging": []}]}"#;
    let err = error_of(body);
    assert_eq!(err, PayloadError::UnknownObject("page".into()));
    assert_eq!(
        err.to_string(),
        "`object` is \"page\", not \"whatsapp_business_account\": not a WhatsApp webhook"
    );
    assert_eq!(err.http_status(), 200);
}

#[test]
fn no_senders_means_every_message_is_skipped() {
    let body = from_anna(message("text", json!({"body": "Hi"})));
    let parsed = parse_payload(&body, &SenderDirectory::new()).unwrap();
    assert_eq!(parsed.events, vec![]);
    assert_eq!(parsed.warnings.len(), 1);
}

// ---------------------------------------------------------------------------
// Signature
// ---------------------------------------------------------------------------

const APP_SECRET: &[u8] = b"6f1e2d3c4b5a69788796a5b4c3d2e1f0";

#[test]
fn valid_signature() {
    let body = from_anna(message("text", json!({"body": "Hi"})));
    let header = signature_header(APP_SECRET, &body);
    assert_eq!(header.len(), "sha256=".len() + 64);
    assert_eq!(verify_signature(APP_SECRET, &body, Some(&header)), Ok(()));
    // Upper-case hex and surrounding whitespace are accepted.
    let upper = format!(" sha256={} ", header["sha256=".len()..].to_uppercase());
    assert_eq!(verify_signature(APP_SECRET, &body, Some(&upper)), Ok(()));
}

#[test]
fn a_known_signature() {
    // HMAC-SHA256("key", "The quick brown fox jumps over the lazy dog"), a
    // published test vector.
    let header = "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8";
    assert_eq!(
        signature_header(b"key", b"The quick brown fox jumps over the lazy dog"),
        header
    );
    assert_eq!(
        verify_signature(
            b"key",
            b"The quick brown fox jumps over the lazy dog",
            Some(header)
        ),
        Ok(())
    );
}

#[test]
fn wrong_secret_and_tampered_body_mismatch() {
    let body = from_anna(message("text", json!({"body": "Hi"})));
    let header = signature_header(b"another app's secret", &body);
    assert_eq!(
        verify_signature(APP_SECRET, &body, Some(&header)),
        Err(SignatureError::Mismatch)
    );
    let header = signature_header(APP_SECRET, &body);
    let tampered = from_anna(message("text", json!({"body": "Hi!"})));
    assert_eq!(
        verify_signature(APP_SECRET, &tampered, Some(&header)),
        Err(SignatureError::Mismatch)
    );
    // Re-serialising changes the bytes: the raw body is what is signed.
    let reparsed =
        serde_json::to_vec_pretty(&serde_json::from_slice::<Json>(&body).unwrap()).unwrap();
    assert_eq!(
        verify_signature(APP_SECRET, &reparsed, Some(&header)),
        Err(SignatureError::Mismatch)
    );
}

#[test]
fn missing_and_malformed_headers() {
    let body = b"{}";
    let good = signature_header(APP_SECRET, body);
    assert_eq!(
        verify_signature(APP_SECRET, body, None),
        Err(SignatureError::MissingHeader)
    );
    for header in [
        "",
        "sha1=0123456789abcdef0123456789abcdef01234567",
        &good["sha256=".len()..],
        "sha256=",
        "sha256=abc",
        &format!("{good}00"),
        &format!("sha256={}", "zz".repeat(32)),
        &format!("SHA256={}", &good["sha256=".len()..]),
    ] {
        let result = verify_signature(APP_SECRET, body, Some(header));
        assert!(
            matches!(result, Err(SignatureError::MalformedHeader { .. })),
            "{header:?}: {result:?}"
        );
    }
    assert_eq!(
        verify_signature(b"", body, Some(&signature_header(b"", body))),
        Err(SignatureError::NoAppSecret)
    );
}

// ---------------------------------------------------------------------------
// Handshake
// ---------------------------------------------------------------------------

fn params(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

const VERIFY_TOKEN: &str = "flowc-verify-7d1f";

#[test]
fn good_handshake_returns_the_challenge() {
    let query = params(&[
        ("hub.mode", "subscribe"),
        ("hub.verify_token", VERIFY_TOKEN),
        ("hub.challenge", "1158201444"),
    ]);
    assert_eq!(
        verify_handshake(&query, VERIFY_TOKEN),
        Ok("1158201444".to_string())
    );
}

#[test]
fn handshake_refusals() {
    let cases = [
        (
            params(&[
                ("hub.mode", "subscribe"),
                ("hub.verify_token", "flowc-verify-7d1e"),
                ("hub.challenge", "1158201444"),
            ]),
            HandshakeError::TokenMismatch,
        ),
        (
            params(&[
                ("hub.mode", "subscribe"),
                ("hub.verify_token", ""),
                ("hub.challenge", "1158201444"),
            ]),
            HandshakeError::TokenMismatch,
        ),
        (
            params(&[
                ("hub.mode", "unsubscribe"),
                ("hub.verify_token", VERIFY_TOKEN),
                ("hub.challenge", "1158201444"),
            ]),
            HandshakeError::WrongMode("unsubscribe".into()),
        ),
        (
            params(&[("hub.verify_token", VERIFY_TOKEN), ("hub.challenge", "1")]),
            HandshakeError::MissingMode,
        ),
        (
            params(&[("hub.mode", "subscribe"), ("hub.challenge", "1")]),
            HandshakeError::MissingToken,
        ),
        (
            params(&[
                ("hub.mode", "subscribe"),
                ("hub.verify_token", VERIFY_TOKEN),
            ]),
            HandshakeError::MissingChallenge,
        ),
        (
            params(&[
                ("hub.mode", "subscribe"),
                ("hub.verify_token", VERIFY_TOKEN),
                ("hub.challenge", ""),
            ]),
            HandshakeError::MissingChallenge,
        ),
    ];
    for (query, expected) in cases {
        assert_eq!(
            verify_handshake(&query, VERIFY_TOKEN),
            Err(expected),
            "{query:?}"
        );
    }
    // An empty configured token proves nothing, even to an empty given one.
    let query = params(&[
        ("hub.mode", "subscribe"),
        ("hub.verify_token", ""),
        ("hub.challenge", "1"),
    ]);
    assert_eq!(
        verify_handshake(&query, ""),
        Err(HandshakeError::NotConfigured)
    );
}

// ---------------------------------------------------------------------------
// Host events
// ---------------------------------------------------------------------------

#[test]
fn host_event() {
    let (id, event) = parse_host_event(
        br#"{"id": "call_8f3a2c91", "trigger": "call.ended", "fields": {
            "customer_phone": "+4915112345678", "agent_name": "Jonas Becker",
            "outcome": "appointment_booked", "ended_at": "2026-03-10T14:05:00+01:00",
            "call_id": "call_8f3a2c91", "duration": "4m30s"}}"#,
    )
    .unwrap();
    assert_eq!(id, "call_8f3a2c91");
    assert_eq!(event.trigger, "call.ended");
    assert_eq!(event.fields["outcome"], "appointment_booked");
    event.to_value(&schemas()).unwrap();

    let (_, event) = parse_host_event(br#"{"trigger": "call.ended", "id": "e1"}"#).unwrap();
    assert!(event.fields.is_empty());
}

#[test]
fn host_event_errors() {
    let cases: [(&[u8], &str); 8] = [
        (
            br#"{"trigger": "call.ended", "fields": {}}"#,
            "`id` is missing",
        ),
        (
            br#"{"id": 17, "trigger": "call.ended"}"#,
            "`id` should be a string, found a number",
        ),
        (
            br#"{"id": " ", "trigger": "call.ended"}"#,
            "`id`: the id is empty; give each event a unique id",
        ),
        (br#"{"id": "e1"}"#, "`trigger` is missing"),
        (
            br#"{"id": "e1", "trigger": "call.ended", "fields": [1]}"#,
            "`fields` should be an object, found a list",
        ),
        (
            br#"{"id": "e1", "trigger": "call.ended", "fields": {}, "priority": "high"}"#,
            "unknown key `priority`: an event has `id`, `trigger` and `fields`",
        ),
        (
            br#"{"id": "e1", "triger": "call.ended"}"#,
            "unknown key `triger`: an event has `id`, `trigger` and `fields`; did you mean `trigger`?",
        ),
        (br#"{"id": "e1", "#, ""),
    ];
    for (body, expected) in cases {
        let err = parse_host_event(body).unwrap_err();
        if expected.is_empty() {
            assert!(matches!(err, PayloadError::Json(_)), "{err:?}");
        } else {
            assert_eq!(err.to_string(), expected);
        }
    }
    let long = format!(
        r#"{{"id": "{}", "trigger": "call.ended"}}"#,
        "x".repeat(257)
    );
    assert!(matches!(
        parse_host_event(long.as_bytes()),
        Err(PayloadError::Invalid { path, .. }) if path == "id"
    ));
}
