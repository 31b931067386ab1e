//! The configuration file end to end: the examples and seeds load into the expected settings,
//! and every problem is reported with its line.

use super::check::generic_defaults;
use super::*;
use crate::helpdesk::generic::{GenericAuth, GenericFields};
use crate::helpdesk::signature::{HmacSha256Scheme, SignatureEncoding, SignedTimestamp};
use crate::mapping::{FieldRule, Lists, SourceMapping, Transform};
use crate::model::EventKind;

const EXAMPLE: &str = include_str!("../../../../examples/deskbridge.yaml");

/// The Gorgias section of the seeds, as written there.
const GORGIAS_SEED: &str = include_str!("../../../../examples/seeds/gorgias.yaml");

fn rules(rows: &[(&str, &str, Transform)]) -> Vec<FieldRule> {
    rows.iter()
        .map(|(p, a, t)| FieldRule::new(p, a, *t))
        .collect()
}

fn problems(text: &str) -> Vec<(Option<usize>, String)> {
    parse("test.yaml", text)
        .expect_err("invalid")
        .problems
        .into_iter()
        .map(|p| (p.line, p.message))
        .collect()
}

#[test]
fn the_example_file_parses_into_the_expected_mapping() {
    use Transform::*;
    assert!(
        include_str!("../../../../README.md").contains(EXAMPLE),
        "the README shows examples/deskbridge.yaml as it is"
    );
    let cfg = parse("examples/deskbridge.yaml", EXAMPLE).expect("valid");

    let mut expected = Mapping {
        default_region: Some("US".into()),
        deletions: crate::deletions::Deletions::Unlink,
        ..Mapping::default()
    };
    let gorgias = expected.sources.get_mut("gorgias").expect("gorgias");
    gorgias.field_mapping = rules(&[
        ("id", "GORGIAS_ID", Auto),
        ("name", "FIRSTNAME", SplitName),
        ("phone", "SMS", Phone),
        ("nb_tickets", "TICKET_COUNT", Number),
        ("last_ticket_date", "LAST_SUPPORT_DATE", Date),
        ("last_ticket_channel", "LAST_SUPPORT_CHANNEL", Text),
        ("avg_response_time", "AVG_RESPONSE_TIME", Number),
        ("last_satisfaction_score", "CSAT_SCORE", Number),
        ("satisfaction_count", "CSAT_RESPONSES", Number),
        ("customer_type", "CUSTOMER_TYPE", Auto),
        ("vip_status", "VIP_STATUS", Boolean),
        ("meta.plan_tier", "PLAN_TIER", Auto),
    ]);
    gorgias.event_mapping =
        BTreeMap::from([("ticket.closed".into(), "GORGIAS_TICKET_RESOLVED".into())]);
    gorgias.lists = Lists {
        all_contacts: Some(35),
        satisfied: Some(36),
        dissatisfied: Some(37),
        ..Default::default()
    };
    gorgias.tag_lists = BTreeMap::from([("vip".into(), 40), ("churn-risk".into(), 41)]);
    let intercom = expected.sources.get_mut("intercom").expect("intercom");
    intercom.field_mapping = rules(&[
        ("id", "INTERCOM_ID", Auto),
        ("name", "FIRSTNAME", SplitName),
        ("phone", "SMS", Phone),
        ("role", "INTERCOM_ROLE", Auto),
        ("signed_up_at", "SIGNUP_DATE", Date),
        ("last_seen_at", "LAST_ACTIVE", Date),
        ("session_count", "SESSION_COUNT", Number),
        ("unsubscribed_from_emails", "UNSUBSCRIBED", Boolean),
        ("company.name", "COMPANY_NAME", Auto),
        ("company.plan", "COMPANY_PLAN", Auto),
        ("company.size", "COMPANY_SIZE", Number),
        ("custom_attributes.plan_tier", "PLAN_TIER", Auto),
        ("custom_attributes.feature_usage", "FEATURE_USAGE", Auto),
        (
            "in_support_conversation",
            "IN_SUPPORT_CONVERSATION",
            Boolean,
        ),
    ]);
    intercom.event_mapping =
        BTreeMap::from([("satisfaction_survey.created".into(), String::new())]);
    intercom.lists = Lists {
        all_contacts: Some(38),
        satisfied: Some(39),
        dissatisfied: None,
        active_conversations: Some(42),
        leads: Some(43),
    };
    expected.sources.insert(
        "generic:cinnox".into(),
        SourceMapping {
            field_mapping: rules(&[
                ("id", "CINNOX_ID", Auto),
                ("name", "FIRSTNAME", SplitName),
                ("phone", "SMS", Phone),
                ("contact.company", "COMPANY_NAME", Auto),
            ]),
            event_mapping: BTreeMap::from([("ticket.created".into(), "CINNOX_ENQUIRY_NEW".into())]),
            ..Default::default()
        },
    );
    assert_eq!(cfg.mapping, expected);

    let pointer = |p: &str| Some(p.to_string());
    assert_eq!(
        cfg.generic,
        BTreeMap::from([(
            "cinnox".to_string(),
            GenericSource {
                auth: GenericAuth::HmacSha256 {
                    scheme: HmacSha256Scheme {
                        header: "X-Signature".into(),
                        encoding: SignatureEncoding::Hex,
                        prefix: Some("sha256=".into()),
                        timestamp: None,
                    },
                    secret_env: "CINNOX_WEBHOOK_SECRET".into(),
                },
                fields: GenericFields {
                    email: pointer("/contact/email"),
                    phone: pointer("/contact/phone"),
                    name: pointer("/contact/name"),
                    first_name: None,
                    last_name: None,
                    external_id: pointer("/contact/id"),
                    event_type: pointer("/event"),
                    event_time: pointer("/occurred_at"),
                    delivery_id: pointer("/delivery_id"),
                    subject: pointer("/enquiry/id"),
                    channel: pointer("/enquiry/channel"),
                    ..Default::default()
                },
                events: BTreeMap::from([
                    ("enquiry.new".into(), Some(EventKind::TicketCreated)),
                    ("enquiry.closed".into(), Some(EventKind::TicketClosed)),
                    ("enquiry.missed".into(), Some(EventKind::DataEvent)),
                    ("contact.created".into(), Some(EventKind::CustomerCreated)),
                    ("contact.edited".into(), None),
                ]),
                deletions: std::collections::BTreeSet::from(["contact.deleted".to_string()]),
            }
        )])
    );

    let streams = |pairs: &[&str]| pairs.iter().map(|s| (s.to_string(), true)).collect();
    assert_eq!(
        cfg.sources,
        BTreeMap::from([
            ("generic:cinnox".to_string(), SourceFileSettings::default()),
            (
                "gorgias".to_string(),
                SourceFileSettings {
                    enabled: true,
                    domain: Some("yourstore.gorgias.com".into()),
                    streams: streams(&["customers", "tickets", "satisfaction_surveys"]),
                    ..Default::default()
                }
            ),
            (
                "intercom".to_string(),
                SourceFileSettings {
                    enabled: true,
                    domain: None,
                    streams: streams(&["contacts", "conversations"]),
                    token_var: Some("INTERCOM_ACCESS_TOKEN".into()),
                    api_version: Some("2.11".into()),
                    support_type_scope: None,
                }
            ),
            (
                "zendesk".to_string(),
                SourceFileSettings {
                    enabled: false,
                    ..Default::default()
                }
            ),
        ])
    );
    assert!(!cfg.historical_events);
    assert_eq!(cfg.warnings, vec![]);

    // What the mapping then does with it.
    assert_eq!(
        cfg.mapping
            .event_name(&Source::Gorgias, EventKind::TicketClosed)
            .as_deref(),
        Some("GORGIAS_TICKET_RESOLVED")
    );
    assert_eq!(
        cfg.mapping
            .event_name(&Source::Intercom, EventKind::SurveySent),
        None
    );
    assert_eq!(
        cfg.mapping
            .event_name(&Source::Intercom, EventKind::TicketClosed)
            .as_deref(),
        Some("SUPPORT_TICKET_RESOLVED")
    );
    assert!(!cfg.source_enabled(&Source::Zendesk));
    assert!(!cfg.stream_enabled(&Source::Zendesk, "tickets"));
    assert!(cfg.stream_enabled(&Source::Gorgias, "tickets"));
}

#[test]
fn an_empty_file_gives_the_defaults() {
    for text in ["", "\n", "# nothing yet\n", "~\n", "---\n"] {
        let cfg = parse("empty.yaml", text).expect("valid");
        assert_eq!(cfg, FileConfig::default(), "{text:?}");
        assert!(cfg.source_enabled(&Source::Gorgias));
        assert!(cfg.stream_enabled(&Source::Intercom, "contacts"));
    }
}

#[test]
fn the_gorgias_seed_loads_with_its_aggregate_rows() {
    use Transform::*;
    let cfg = parse("seed.yaml", GORGIAS_SEED).expect("valid");
    let g = cfg.mapping.source(&Source::Gorgias);
    assert_eq!(
        g.field_mapping,
        rules(&[
            ("id", "GORGIAS_ID", Auto),
            ("name", "FIRSTNAME", SplitName),
            ("phone", "SMS", Phone),
            ("nb_tickets", "TICKET_COUNT", Number),
            ("last_ticket_date", "LAST_SUPPORT_DATE", Date),
            ("last_ticket_channel", "LAST_SUPPORT_CHANNEL", Text),
            ("avg_response_time", "AVG_RESPONSE_TIME", Number),
            ("last_satisfaction_score", "CSAT_SCORE", Number),
            ("satisfaction_count", "CSAT_RESPONSES", Number),
            ("customer_type", "CUSTOMER_TYPE", Auto),
            ("vip_status", "VIP_STATUS", Auto),
        ])
    );
    assert_eq!(
        g.lists,
        Lists {
            all_contacts: Some(35),
            satisfied: Some(36),
            dissatisfied: Some(37),
            ..Default::default()
        }
    );
    assert_eq!(cfg.mapping.event_mapping, Mapping::default().event_mapping);
    // The other sources keep their defaults.
    let defaults = Mapping::default();
    assert_eq!(cfg.mapping.sources["zendesk"], defaults.sources["zendesk"]);
    assert_eq!(
        cfg.mapping.sources["intercom"],
        defaults.sources["intercom"]
    );
    let settings = &cfg.sources["gorgias"];
    assert_eq!(settings.domain.as_deref(), Some("yourstore.gorgias.com"));
    assert_eq!(settings.streams.get("tags"), Some(&true));
    // `tags` switches the tickets' tags (on by default); the seed loads without a warning.
    assert_eq!(cfg.warnings, vec![]);
    assert!(cfg.stream_enabled(&Source::Gorgias, "tags"));
}

#[test]
fn the_intercom_seed_mapping_loads_and_warns_about_the_missing_id() {
    use Transform::*;
    let text = "\
connectors:
  intercom:
    lists: { all_users: 35 }
    field_mapping:
      email: email
      name: FULLNAME
      phone: SMS
      signed_up_at: SIGNUP_DATE
      last_seen_at: LAST_ACTIVE
      unsubscribed_from_emails: UNSUBSCRIBED
      custom_attributes.plan_tier: PLAN_TIER
";
    let cfg = parse("intercom.yaml", text).expect("valid");
    let i = cfg.mapping.source(&Source::Intercom);
    assert_eq!(
        i.field_mapping,
        rules(&[
            ("name", "FULLNAME", Auto),
            ("phone", "SMS", Phone),
            ("signed_up_at", "SIGNUP_DATE", Date),
            ("last_seen_at", "LAST_ACTIVE", Date),
            ("unsubscribed_from_emails", "UNSUBSCRIBED", Auto),
            ("custom_attributes.plan_tier", "PLAN_TIER", Auto),
        ])
    );
    assert_eq!(i.lists.all_contacts, Some(35));
    assert_eq!(
        cfg.warnings,
        vec![Problem {
            line: Some(4),
            message: "the field_mapping of intercom has no `id` row, so INTERCOM_ID is not \
                      written (it replaces the default rules)"
                .into()
        }]
    );
}

/// The Intercom seed's configuration, as written there (its comments included).
const INTERCOM_SEED: &str = include_str!("../../../../examples/seeds/intercom.yaml");

#[test]
fn the_intercom_seed_loads_as_written() {
    let cfg = parse("intercom.yaml", INTERCOM_SEED).expect("valid");
    let i = cfg.mapping.source(&Source::Intercom);
    assert_eq!(
        i.lists,
        Lists {
            all_contacts: Some(35),
            active_conversations: Some(36),
            leads: Some(37),
            ..Default::default()
        }
    );
    assert_eq!(i.field_mapping.len(), 11);
    let settings = &cfg.sources["intercom"];
    assert_eq!(settings.token_var.as_deref(), Some("INTERCOM_ACCESS_TOKEN"));
    assert_eq!(settings.api_version.as_deref(), Some("2.11"));
    assert!(settings.enabled);
    // What is not built yet says so, line by line, instead of failing the file.
    let warnings: Vec<(Option<usize>, &str)> = cfg
        .warnings
        .iter()
        .map(|w| (w.line, w.message.as_str()))
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    // `companies` (line 12) switches the opt-in companies stream on, `events` (13) the
    // contacts' data events, `tags` (14) the contacts' tags: no warning.
    for key in ["companies", "events", "tags"] {
        assert!(cfg.stream_enabled(&Source::Intercom, key), "{key}");
    }
    assert!(!FileConfig::default().stream_enabled(&Source::Intercom, "companies"));
    assert!(!FileConfig::default().stream_enabled(&Source::Intercom, "events"));
    assert!(warnings[0].1.contains("no `id` row"), "{warnings:?}");
}

#[test]
fn zendesk_reads_ai_agent_tickets_unless_the_scope_says_otherwise() {
    assert_eq!(FileConfig::default().support_type_scope(), "all");
    let cfg = parse(
        "z.yaml",
        "connectors:\n  zendesk:\n    support_type_scope: agent\n",
    )
    .expect("valid");
    assert_eq!(cfg.support_type_scope(), "agent");
    assert_eq!(
        problems("connectors:\n  zendesk:\n    support_type_scope: bots\n"),
        vec![(
            Some(3),
            "connectors.zendesk.support_type_scope: `bots` is not a scope; write all (every \
             ticket, the default), agent (those agents handled) or ai_agent (those AI agents \
             handled)"
                .to_string()
        )]
    );
}

/// The line numbers of `text` that hold a key (neither blank nor a comment).
fn key_lines(text: &str) -> Vec<usize> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .map(|(i, _)| i + 1)
        .collect()
}

#[test]
fn every_line_of_the_seeds_says_what_it_does() {
    for (name, text) in [("gorgias", GORGIAS_SEED), ("intercom", INTERCOM_SEED)] {
        let cfg = parse("seed.yaml", text).expect("valid");
        let explained: Vec<usize> = cfg.lines.iter().map(|s| s.line).collect();
        for line in key_lines(text) {
            assert!(
                explained.contains(&line),
                "{name} line {line} `{}` is not explained: {:#?}",
                text.lines().nth(line - 1).unwrap_or_default(),
                cfg.lines
            );
        }
    }
    let cfg = parse("seed.yaml", INTERCOM_SEED).expect("valid");
    let says = |key: &str| -> String {
        cfg.lines
            .iter()
            .find(|s| s.key == key)
            .map(|s| s.says.clone())
            .unwrap_or_else(|| panic!("no `{key}` in {:#?}", cfg.lines))
    };
    assert_eq!(
        says("connectors.intercom.access_token"),
        "the API token is read from the variable INTERCOM_ACCESS_TOKEN"
    );
    assert_eq!(
        says("connectors.intercom.lists.leads"),
        "list 37: leads join, and leave when they become users"
    );
    assert_eq!(
        says("connectors.intercom.sync.companies"),
        "the batch sync reads companies"
    );
    assert_eq!(
        says("connectors.intercom.sync.events"),
        "the batch sync reads each changed contact's data events with the contacts"
    );
    assert_eq!(
        says("connectors.intercom.sync.tags"),
        "the batch sync reads each contact's tags with the contacts"
    );
    assert_eq!(
        says("field_mapping.signed_up_at"),
        "`signed_up_at` is written to SIGNUP_DATE (date)"
    );
    assert_eq!(
        says("field_mapping.email"),
        "contacts are matched by email: no attribute"
    );
    let cfg = parse("seed.yaml", GORGIAS_SEED).expect("valid");
    assert!(
        cfg.lines.iter().any(|s| s.key == "field_mapping.nb_tickets"
            && s.says == "computed `nb_tickets` is written to TICKET_COUNT (number)"),
        "{:#?}",
        cfg.lines
    );
    assert!(
        cfg.lines
            .iter()
            .any(|s| s.key == "event_mapping.ticket.closed"
                && s.says == "`ticket.closed` is sent as SUPPORT_TICKET_RESOLVED for every source"),
        "{:#?}",
        cfg.lines
    );
}

#[test]
fn the_seed_keys_refuse_what_they_cannot_do() {
    let text = "\
connectors:
  intercom:
    access_token: dG9rOjEyMzQ1Njc4OTA=
    api_version: 2.10
    direction: bidirectional
  gorgias:
    access_token: \"${GORGIAS_TOKEN}\"
    direction: sideways
    lists: { leads: 5, active_conversations: 6 }
  zendesk:
    api_version: \"2.11\"
";
    let found = problems(text);
    let expected: Vec<(Option<usize>, String)> = vec![
        (
            3,
            "connectors.intercom.access_token: write the variable that holds the token, as \
             \"${INTERCOM_ACCESS_TOKEN}\", not the token itself: the file is not a place for \
             secrets (in AWS, put the token in the credentials secret under that name)",
        ),
        (
            4,
            "connectors.intercom.api_version: write the version in quotes, as \"2.11\": \
             unquoted, YAML reads it as a number, and 2.10 would become 2.1",
        ),
        (
            5,
            "connectors.intercom.direction: `bidirectional` is not available: deskbridge \
             sends intercom to Brevo, and sends nothing back yet; write `intercom_to_brevo` \
             or leave `direction` out",
        ),
        (
            7,
            "connectors.gorgias.access_token: `access_token` is a setting of intercom; \
             gorgias reads its credentials and API from its own variables (see the README's \
             configuration table)",
        ),
        (
            8,
            "connectors.gorgias.direction: `sideways` is not a direction; write \
             `gorgias_to_brevo` (the default)",
        ),
        (
            9,
            "connectors.gorgias.lists.leads: leads are Intercom's (contacts with the role \
             `lead`); gorgias has none",
        ),
        (
            11,
            "connectors.zendesk.api_version: `api_version` is a setting of intercom; zendesk \
             reads its credentials and API from its own variables (see the README's \
             configuration table)",
        ),
    ]
    .into_iter()
    .map(|(l, m)| (Some(l), m.to_string()))
    .collect();
    assert_eq!(found, expected);
    // The literal is never repeated back: it is probably the token.
    assert!(found.iter().all(|(_, m)| !m.contains("dG9r")));
}

#[test]
fn every_problem_is_reported_with_its_line() {
    let text = "\
feild_mapping: {}
default_region: Narnia
event_mapping:
  ticket.solved: SUPPORT_TICKET_SOLVED
  ticket.closed: support.ticket.closed
connectors:
  freshdesk: { enabled: true }
  gorgias:
    enabled: yes
    lists: { all_support_contacts: 0, satisfied_customers: \"36\", leads: 37 }
    tag_lists: { vip: -4, VIP: 5 }
    field_mapping:
      name: firstname
      phone: { attribute: SMS, transform: e164 }
      nb_tickets: TICKET_COUNT
      ticket_count: TICKET_COUNT
      company: { transform: text }
      tags: [a, b]
    event_mapping:
      customer.created: SUPPORT CUSTOMER
  zendesk:
    lsts: { all_contacts: 5 }
  generic:cinnox: {}
historical_events: 1
";
    let expected: Vec<(Option<usize>, String)> = vec![
        (
            1,
            "unknown key `feild_mapping` at the top level (did you mean `field_mapping`?); \
             known keys: default_region, historical_events, event_mapping, connectors, \
             field_mapping, brevo_to_helpdesk, actions, deletions",
        ),
        (
            2,
            "default_region: `Narnia` is not a region code; use a two-letter ISO 3166 code \
             such as US, GB or DE",
        ),
        (
            4,
            "event_mapping: `ticket.solved` is not an event deskbridge knows (did you mean \
             `ticket.closed`?); known events: ticket.created, ticket.closed, \
             ticket.reopened, satisfaction_survey.created, satisfaction_survey.responded, \
             customer.created, ticket.snoozed, ticket.unsnoozed, ai_agent.resolved, \
             ai_agent.escalated, macro.applied, rule.executed, data_event",
        ),
        (
            5,
            "event_mapping.ticket.closed: Brevo would reject the event name \
             `support.ticket.closed`; event names are letters, digits, _ and - only, at \
             most 255 characters",
        ),
        (
            7,
            "unknown source `freshdesk` under connectors; known: zendesk, intercom, \
             gorgias, <helpdesk>:<account>, generic:<name>",
        ),
        (
            9,
            "connectors.gorgias.enabled must be true or false, not `yes`",
        ),
        (
            10,
            "connectors.gorgias.lists.all_support_contacts: Brevo list ids are positive \
              whole numbers, not `0`",
        ),
        (
            10,
            "connectors.gorgias.lists.satisfied_customers: write the list id 36 without \
              quotes",
        ),
        (
            10,
            "connectors.gorgias.lists.leads: leads are Intercom's (contacts with the role \
              `lead`); gorgias has none",
        ),
        (
            11,
            "connectors.gorgias.tag_lists.vip: Brevo list ids are positive whole \
              numbers, not `-4`",
        ),
        (
            11,
            "tag `VIP` is given twice in connectors.gorgias.tag_lists; tags match \
              whatever their case (first on line 11)",
        ),
        (
            13,
            "connectors.gorgias.field_mapping.name: `firstname` is not a valid attribute \
              name; Brevo attribute names are UPPERCASE letters, digits and _ (did you \
              mean `FIRSTNAME`?)",
        ),
        (
            14,
            "connectors.gorgias.field_mapping.phone: unknown transform `e164`; known: \
              auto, text, number, boolean, date, phone, split_name, email, tags",
        ),
        (
            16,
            "connectors.gorgias.field_mapping: `nb_tickets` (line 15) and \
              `ticket_count` both map to TICKET_COUNT; each attribute can come from one \
              path only",
        ),
        (
            17,
            "connectors.gorgias.field_mapping.company needs an `attribute`",
        ),
        (
            18,
            "connectors.gorgias.field_mapping.tags must be a Brevo attribute name or { \
              attribute: NAME, transform: KIND }, not a list",
        ),
        (
            20,
            "connectors.gorgias.event_mapping.customer.created: Brevo would reject the \
              event name `SUPPORT CUSTOMER`; event names are letters, digits, _ and - \
              only, at most 255 characters",
        ),
        (
            22,
            "unknown key `lsts` in connectors.zendesk (did you mean `lists`?); known \
              keys: enabled, domain, subdomain, sync, lists, tag_lists, field_mapping, \
              event_mapping, direction, access_token, api_version, support_type_scope, aggregates",
        ),
        (24, "historical_events must be true or false, not `1`"),
    ]
    .into_iter()
    .map(|(l, m)| (Some(l), m.to_string()))
    .collect();
    let got = problems(text);
    for (g, e) in got.iter().zip(&expected) {
        assert_eq!(g, e);
    }
    assert_eq!(got.len(), expected.len(), "{got:#?}");
}

#[test]
fn repeated_keys_and_misplaced_top_level_rules_are_reported() {
    let text = "\
connectors:
  gorgias: {}
  intercom: {}
field_mapping:
  id: X_ID
  id: Y_ID
";
    assert_eq!(
        problems(text),
        vec![
            (
                Some(4),
                "a top-level field_mapping belongs to the one source listed under \
                 connectors, but 2 are listed; move the rules to \
                 connectors.<source>.field_mapping"
                    .to_string()
            ),
            (
                Some(6),
                "`id` is given twice in field_mapping (first on line 5)".to_string()
            ),
        ]
    );

    let both = "\
connectors:
  gorgias:
    field_mapping: { id: GORGIAS_ID }
field_mapping: { id: GORGIAS_ID }
";
    assert_eq!(
        problems(both),
        vec![(
            Some(4),
            "field_mapping is given both at the top level and under connectors.gorgias; \
             keep one"
                .to_string()
        )]
    );
    let none = "field_mapping: { id: GORGIAS_ID }\n";
    assert_eq!(problems(none).len(), 1);
    assert_eq!(problems(none)[0].0, Some(1));
}

#[test]
fn yaml_syntax_errors_name_the_line() {
    let err = parse("bad.yaml", "connectors:\n  gorgias: { enabled: true\n").expect_err("invalid");
    assert_eq!(
        err.to_string(),
        "bad.yaml:2: not valid YAML: unclosed bracket '{'"
    );
    let err = parse("bad.yaml", "- just\n- a list\n").expect_err("invalid");
    assert_eq!(
        err.to_string(),
        "bad.yaml:1: the top level must be a mapping of `key: value` entries, not a list"
    );
}

#[test]
fn display_prints_one_problem_per_line() {
    let err = parse("deskbridge.yaml", "historical_events: maybe\nfoo: 1\n").expect_err("invalid");
    assert_eq!(
        err.to_string(),
        "deskbridge.yaml:1: historical_events must be true or false, not `maybe`\n\
         deskbridge.yaml:2: unknown key `foo` at the top level; known keys: \
         default_region, historical_events, event_mapping, connectors, field_mapping, \
         brevo_to_helpdesk, actions, deletions"
    );
    let as_config_error: ConfigError = err.into();
    assert!(
        as_config_error
            .to_string()
            .starts_with("configuration file: deskbridge.yaml:1:")
    );
}

#[test]
fn generic_sources_and_norway() {
    let text = "\
default_region: NO
connectors:
  generic:cinnox:
    tag_lists: { 2024: 7 }
    event_mapping: { ticket.created: CINNOX_ENQUIRY_NEW }
";
    let cfg = parse("g.yaml", text).expect("valid");
    assert_eq!(cfg.mapping.default_region.as_deref(), Some("NO"));
    let cinnox = Source::Generic("cinnox".into());
    let sm = cfg.mapping.source(&cinnox);
    assert_eq!(sm.field_mapping, generic_defaults(&cinnox).field_mapping);
    assert_eq!(sm.field_mapping[0].attribute, "CINNOX_ID");
    assert_eq!(sm.tag_lists, BTreeMap::from([("2024".to_string(), 7)]));
    assert_eq!(
        cfg.mapping
            .event_name(&cinnox, EventKind::TicketCreated)
            .as_deref(),
        Some("CINNOX_ENQUIRY_NEW")
    );
    assert!(cfg.source_enabled(&cinnox));
}

#[test]
fn streams_can_be_switched_off() {
    let text = "connectors:\n  zendesk:\n    sync: { tickets: false }\n";
    let cfg = parse("s.yaml", text).expect("valid");
    assert!(!cfg.stream_enabled(&Source::Zendesk, "tickets"));
    assert!(cfg.stream_enabled(&Source::Zendesk, "users"));
    assert!(cfg.stream_enabled(&Source::Gorgias, "tickets"));
    assert!(cfg.source_enabled(&Source::Zendesk));
}

#[test]
fn generic_sources_read_tags_scores_and_event_properties_by_pointer() {
    let text = "connectors:\n  generic:desk:\n    auth: { type: bearer, token_env: DESK_TOKEN }\n    fields:\n      email: /email\n      event_type: /event\n      tags: /tags\n      score: /rating/score\n      properties:\n        agent: /agent/name\n        queue: queue\n    events: { rated: satisfaction_survey.responded }\n";
    let err = parse("g.yaml", text).expect_err("a bad pointer");
    let problems: Vec<(Option<usize>, String)> = err
        .problems
        .iter()
        .map(|p| (p.line, p.message.clone()))
        .collect();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].0, Some(11));
    assert!(
        problems[0]
            .1
            .contains("fields.properties.queue: `queue` is not a JSON pointer"),
        "{problems:?}"
    );
    let cfg = parse("g.yaml", &text.replace(": queue\n", ": /queue\n")).expect("valid");
    let f = &cfg.generic["desk"].fields;
    assert_eq!(f.tags.as_deref(), Some("/tags"));
    assert_eq!(f.score.as_deref(), Some("/rating/score"));
    assert_eq!(f.properties["agent"], "/agent/name");
    assert_eq!(f.properties["queue"], "/queue");
}

#[test]
fn generic_sources_can_sign_with_sha1_or_use_basic_auth() {
    let text = "connectors:\n  generic:legacy:\n    auth: { type: hmac_sha1, header: X-Hub-Signature, secret_env: LEGACY_SECRET, prefix: \"sha1=\" }\n    fields: { email: /email }\n  generic:zap:\n    auth: { type: basic, credentials_env: ZAP_BASIC }\n    fields: { email: /email }\n";
    let cfg = parse("a.yaml", text).expect("valid");
    assert!(matches!(
        cfg.generic["legacy"].auth,
        GenericAuth::HmacSha1 { .. }
    ));
    assert_eq!(
        cfg.generic["zap"].auth,
        GenericAuth::Basic {
            credentials_env: "ZAP_BASIC".into()
        }
    );
    let err = parse(
        "a.yaml",
        "connectors:\n  generic:zap:\n    auth: { type: basic, password: hunter2 }\n    fields: { email: /email }\n",
    )
    .expect_err("a password in the file");
    let text = err.to_string();
    assert!(text.contains("secrets never go in this file"), "{text}");
    assert!(text.contains("`credentials_env`"), "{text}");
}

#[test]
fn a_generic_hmac_can_sign_a_timestamp_with_a_window() {
    let text = "connectors:\n  generic:desk:\n    auth:\n      type: hmac_sha256\n      header: X-Signature\n      secret_env: DESK_SECRET\n      prefix: \"v0=\"\n      timestamp_header: X-Request-Timestamp\n      signed_payload: \"v0:{timestamp}:{body}\"\n      max_age_seconds: 120\n    fields: { email: /email }\n  generic:plain:\n    auth: { type: hmac_sha256, header: X-Sig, secret_env: PLAIN_SECRET, timestamp_header: X-Ts }\n    fields: { email: /email }\n";
    let cfg = parse("t.yaml", text).expect("valid");
    let GenericAuth::HmacSha256 { scheme, .. } = &cfg.generic["desk"].auth else {
        panic!("an HMAC");
    };
    assert_eq!(
        scheme.timestamp,
        Some(SignedTimestamp {
            header: "X-Request-Timestamp".into(),
            before: "v0:{timestamp}:".into(),
            after: String::new(),
            tolerance: std::time::Duration::from_secs(120),
        })
    );
    // The defaults: the timestamp right before the body, five minutes either side.
    let GenericAuth::HmacSha256 { scheme, .. } = &cfg.generic["plain"].auth else {
        panic!("an HMAC");
    };
    let t = scheme.timestamp.as_ref().expect("a timestamp");
    assert_eq!((t.before.as_str(), t.after.as_str()), ("{timestamp}", ""));
    assert_eq!(t.tolerance, std::time::Duration::from_secs(300));

    let err = parse(
        "t.yaml",
        "connectors:\n  generic:desk:\n    auth:\n      type: hmac_sha256\n      header: X-Signature\n      secret_env: DESK_SECRET\n      timestamp_header: \"bad header\"\n      signed_payload: \"{timestamp}\"\n      max_age_seconds: -5\n    fields: { email: /email }\n  generic:other:\n    auth: { type: hmac_sha256, header: X-Sig, secret_env: S, max_age_seconds: 60 }\n    fields: { email: /email }\n",
    )
    .expect_err("invalid timestamp settings");
    let text = err.to_string();
    for expected in [
        "t.yaml:7: connectors.generic:desk.auth.timestamp_header: `bad header` is not an HTTP header name",
        "t.yaml:8: connectors.generic:desk.auth.signed_payload needs `{body}` exactly once",
        "t.yaml:9: connectors.generic:desk.auth.max_age_seconds must be a positive whole number of seconds",
        "t.yaml:12: connectors.generic:other.auth.max_age_seconds needs `timestamp_header`",
    ] {
        assert!(text.contains(expected), "{expected}\n in: {text}");
    }
}

#[test]
fn the_pull_example_declares_two_rest_apis_the_sync_reads() {
    use crate::helpdesk::generic::pull::{Pagination, PullAuth, TimeFormat};
    let text = include_str!("../../../../examples/generic-pull.yaml");
    assert!(
        include_str!("../../../../README.md").contains(text),
        "the README shows examples/generic-pull.yaml as it is"
    );
    let cfg = parse("examples/generic-pull.yaml", text).expect("valid");
    assert_eq!(
        cfg.warnings,
        vec![],
        "a pull-only source needs no webhook blocks"
    );
    assert!(cfg.generic.is_empty(), "no webhooks declared");
    let fd = &cfg.pulls["freshdesk"];
    assert_eq!(fd.base_url, "https://acme.freshdesk.com/api/v2");
    assert_eq!(
        fd.auth,
        PullAuth::Basic {
            credentials_env: "FRESHDESK_API_CREDENTIALS".into()
        }
    );
    assert_eq!(fd.rate.limit(), 100);
    assert_eq!(fd.streams(), ["contacts", "tickets"]);
    let tickets = &fd.resources["tickets"];
    assert_eq!(
        tickets.pagination,
        Pagination::Page {
            param: "page".into(),
            first: 1,
            size_param: Some("per_page".into()),
            size: 100
        }
    );
    let since = tickets.updated_since.as_ref().expect("a filter");
    assert_eq!(
        (since.param.as_str(), since.format),
        ("updated_since", TimeFormat::Rfc3339)
    );
    assert_eq!(since.overlap, std::time::Duration::from_secs(60));
    assert_eq!(tickets.query["include"], "requester,stats");
    assert_eq!(tickets.events["4"], Some(EventKind::TicketClosed));
    assert_eq!(
        tickets.event_times[&EventKind::TicketClosed],
        "/stats/resolved_at"
    );
    assert_eq!(tickets.fields.email.as_deref(), Some("/requester/email"));
    let hs = &cfg.pulls["helpscout"];
    assert_eq!(hs.streams(), ["contacts"]);
    let customers = &hs.resources["contacts"];
    assert_eq!(customers.items, "/_embedded/customers");
    assert!(
        matches!(&customers.pagination, Pagination::NextLink { next, .. } if next == "/_links/next/href")
    );
}

#[test]
fn a_pull_block_with_mistakes_is_refused_line_by_line() {
    let text = "connectors:\n  generic:desk:\n    pull:\n      base_url: ftp://desk.example\n      auth: { type: bearer, token: abc }\n      rate_limit: { requests: 0, per_seconds: 60 }\n      resources:\n        users:\n          path: /users\n        tickets:\n          path: tickets?all=1\n          pagination: { type: cursor, next: /meta/next }\n          updated_since: { format: iso }\n          fields: { email: requester.email }\n";
    let err = parse("p.yaml", text).expect_err("invalid pull block");
    let text = err.to_string();
    for expected in [
        "p.yaml:4: connectors.generic:desk.pull.base_url: `ftp://desk.example` is not an http(s) URL",
        "p.yaml:5: connectors.generic:desk.pull.auth.token: secrets never go in this file",
        "p.yaml:6: connectors.generic:desk.pull.rate_limit.requests must be a positive whole number, not `0`",
        "p.yaml:8: connectors.generic:desk.pull.resources: `users` is not a resource deskbridge reads; known: contacts, tickets",
        "p.yaml:11: connectors.generic:desk.pull.resources.tickets.path: `tickets?all=1` must start with /",
        "connectors.generic:desk.pull.resources.tickets.pagination (cursor) needs `param`",
        "p.yaml:13: connectors.generic:desk.pull.resources.tickets.updated_since.format must be one of rfc3339, unix, unix_ms, date",
        "p.yaml:14: connectors.generic:desk.pull.resources.tickets.fields.email: `requester.email` is not a JSON pointer",
    ] {
        assert!(text.contains(expected), "{expected}\n in: {text}");
    }
    // `pull` belongs to generic sources only.
    let err = parse("p.yaml", "connectors:\n  zendesk:\n    pull: {}\n").expect_err("not generic");
    assert!(
        err.to_string()
            .contains("`pull` are settings of generic:<name> sources"),
        "{err}"
    );
}

#[test]
fn a_further_gorgias_store_is_a_connector_of_its_own() {
    let text = "connectors:\n  gorgias:\n    aggregates: own\n  gorgias:eu-store:\n    sync: { tags: false }\n";
    let cfg = parse("s.yaml", text).expect("valid");
    let store: Source = "gorgias:eu-store".parse().expect("an account");
    let mapping = cfg.mapping.source(&store);
    // Gorgias's default rules, under the store's own id attribute.
    assert!(
        mapping
            .field_mapping
            .iter()
            .any(|r| r.path == "id" && r.attribute == "GORGIAS_EU_STORE_ID")
    );
    assert!(mapping.field_mapping.iter().any(|r| r.path == "nb_tickets"));
    assert!(!mapping.own_aggregates);
    assert!(cfg.mapping.source(&Source::Gorgias).own_aggregates);
    assert!(!cfg.stream_enabled(&store, "tags"));
    assert!(cfg.stream_enabled(&Source::Gorgias, "tags"));

    let err = parse(
        "s.yaml",
        "connectors:\n  zendesk:Brand2: {}\n  gorgias:\n    aggregates: mine\n  \
         freshdesk:eu: {}\n  intercom:eu/x: {}\n",
    )
    .expect_err("bad names");
    let text = err.to_string();
    assert!(
        text.contains("s.yaml:2: `Brand2` cannot name an account of zendesk"),
        "{text}"
    );
    assert!(
        text.contains("s.yaml:4: connectors.gorgias.aggregates: `mine` is not a choice"),
        "{text}"
    );
    assert!(
        text.contains("s.yaml:5: unknown source `freshdesk:eu` under connectors"),
        "{text}"
    );
    assert!(
        text.contains("s.yaml:6: `eu/x` cannot name an account of intercom"),
        "{text}"
    );
}

#[test]
fn further_zendesk_and_intercom_accounts_are_connectors_of_their_own() {
    let text = "connectors:\n  zendesk:brand2:\n    support_type_scope: agent\n    \
                sync: { organizations: false }\n    lists: { all_contacts: 7 }\n  \
                intercom:eu-workspace:\n    access_token: \"${EU_INTERCOM_TOKEN}\"\n    \
                api_version: \"2.10\"\n    lists: { leads: 8 }\n";
    let cfg = parse("s.yaml", text).expect("valid");
    let brand: Source = "zendesk:brand2".parse().expect("an account");
    let workspace: Source = "intercom:eu-workspace".parse().expect("an account");
    for (source, id) in [
        (&brand, "ZENDESK_BRAND2_ID"),
        (&workspace, "INTERCOM_EU_WORKSPACE_ID"),
    ] {
        let mapping = cfg.mapping.source(source);
        assert!(
            mapping
                .field_mapping
                .iter()
                .any(|r| r.path == "id" && r.attribute == id),
            "{source}: {:?}",
            mapping.field_mapping
        );
    }
    assert_eq!(cfg.mapping.source(&brand).lists.all_contacts, Some(7));
    assert_eq!(cfg.mapping.source(&workspace).lists.leads, Some(8));
    assert_eq!(cfg.support_type_scope_of(&brand), "agent");
    assert_eq!(cfg.support_type_scope(), "all", "the first account's own");
    assert!(!cfg.stream_enabled(&brand, "organizations"));
    assert!(cfg.stream_enabled(&Source::Zendesk, "organizations"));
    let settings = &cfg.sources["intercom:eu-workspace"];
    assert_eq!(settings.token_var.as_deref(), Some("EU_INTERCOM_TOKEN"));
    assert_eq!(settings.api_version.as_deref(), Some("2.10"));

    // A Zendesk account's settings are Zendesk's, an Intercom workspace's Intercom's.
    let err = parse(
        "s.yaml",
        "connectors:\n  zendesk:brand2:\n    api_version: \"2.10\"\n  intercom:eu:\n    \
         support_type_scope: agent\n",
    )
    .expect_err("not theirs");
    let text = err.to_string();
    assert!(
        text.contains("s.yaml:3: connectors.zendesk:brand2.api_version: `api_version` is a setting of intercom"),
        "{text}"
    );
    assert!(
        text.contains("s.yaml:5: connectors.intercom:eu.support_type_scope: `support_type_scope` is a setting of zendesk"),
        "{text}"
    );
}

#[test]
fn data_events_can_be_renamed_one_by_one() {
    let text = "event_mapping:\n  data_event.placed-order: ORDER_PLACED\n  data_event: \"\"\n";
    let cfg = parse("d.yaml", text).expect("valid");
    assert_eq!(cfg.warnings, vec![]);
    assert_eq!(
        cfg.mapping
            .event_mapping
            .get("data_event.placed-order")
            .map(String::as_str),
        Some("ORDER_PLACED")
    );
    let err = parse("d.yaml", "event_mapping:\n  data_event.: X\n").expect_err("no name");
    assert!(
        err.to_string().contains("`data_event.` is not an event"),
        "{err}"
    );
}

#[test]
fn gorgias_events_run_only_when_switched_on() {
    // Without a file, and with a file that does not mention it: off.
    assert!(!FileConfig::default().stream_enabled(&Source::Gorgias, "events"));
    let text = "connectors:\n  gorgias:\n    sync: { tickets: true }\n";
    let cfg = parse("g.yaml", text).expect("valid");
    assert!(!cfg.stream_enabled(&Source::Gorgias, "events"));
    assert!(cfg.stream_enabled(&Source::Gorgias, "customers"));
    let text = "connectors:\n  gorgias:\n    sync: { events: true }\n";
    let cfg = parse("g.yaml", text).expect("valid");
    assert_eq!(cfg.warnings, vec![]);
    assert!(cfg.stream_enabled(&Source::Gorgias, "events"));
    // A disabled helpdesk runs nothing, opted in or not.
    let text = "connectors:\n  gorgias:\n    enabled: false\n    sync: { events: true }\n";
    let cfg = parse("g.yaml", text).expect("valid");
    assert!(!cfg.stream_enabled(&Source::Gorgias, "events"));
}

#[test]
fn files_are_read_from_the_variable() {
    assert_eq!(load_from_vars(&Vars::default()), Ok(None));
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/deskbridge.yaml");
    let cfg = load_from_vars(&Vars::from_pairs([(CONFIG_VAR, example)]))
        .expect("valid")
        .expect("configured");
    assert_eq!(cfg.mapping.default_region.as_deref(), Some("US"));

    let missing = "/nonexistent/deskbridge.yaml";
    let err = load_from_vars(&Vars::from_pairs([(CONFIG_VAR, missing)])).expect_err("missing");
    assert_eq!(err.path, missing);
    assert!(
        err.to_string()
            .starts_with("/nonexistent/deskbridge.yaml: cannot read the configuration file")
    );
}

#[test]
fn the_cinnox_zapier_example_loads() {
    let text = include_str!("../../../../examples/cinnox-zapier.yaml");
    // The README shows this file: it must be exactly what is tested here.
    assert!(include_str!("../../../../README.md").contains(text));
    let cfg = parse("examples/cinnox-zapier.yaml", text).expect("valid");
    assert_eq!(cfg.warnings, vec![]);
    let g = &cfg.generic["cinnox"];
    assert_eq!(
        g.auth,
        GenericAuth::Bearer {
            token_env: "CINNOX_WEBHOOK_TOKEN".into()
        }
    );
    assert_eq!(g.fields.email.as_deref(), Some("/email"));
    // Every CINNOX trigger about a person, and none of the account's tag triggers.
    assert_eq!(g.events.len(), 9);
    assert_eq!(g.events["contact.edited"], None);
    assert_eq!(g.events["enquiry.missed"], Some(EventKind::DataEvent));
    assert!(!g.events.contains_key("tag.created") && !g.events.contains_key("contact.deleted"));
    assert_eq!(g.fields.properties["case_number"], "/case_number");
    assert_eq!(
        cfg.mapping
            .source(&Source::Generic("cinnox".into()))
            .event_mapping["data_event.enquiry.missed"],
        "CINNOX_ENQUIRY_MISSED"
    );
    let cinnox = Source::Generic("cinnox".into());
    assert_eq!(
        cfg.mapping.source(&cinnox).field_mapping.last(),
        Some(&FieldRule::new("company", "COMPANY_NAME", Transform::Auto))
    );
    // The built-in sources keep their defaults.
    assert_eq!(
        cfg.mapping.sources["zendesk"],
        Mapping::default().sources["zendesk"]
    );
    assert!(cfg.source_enabled(&Source::Zendesk));
}

#[test]
fn generic_webhook_blocks_are_checked_with_their_lines() {
    let text = r#"connectors:
  generic:cinnox:
    auth:
      type: hmac_sha265
  generic:helpscout:
    auth: { type: hmac_sha256, encoding: b64, secret: "s3cr3t", prefix: "sha256=" }
    fields: { email: contact.email, phone: "/a~2", mail: /x, name: 5 }
    events:
      conversation.created: ticket.opened
      conversation.closed: [ticket.closed]
  generic:freshdesk:
    auth: { type: bearer, token_env: "my token", header: X-Token }
    fields: { event_type: /event, email: /requester/email }
    events: {}
  generic:Gladly:
    auth: { type: bearer, token_env: GLADLY_TOKEN }
    fields: { external_id: /customer/id }
    events: { conversation.new: ticket.created }
  generic:kayako:
    fields: { name: "" }
  generic:front:
    auth: { type: bearer, token_env: FRONT_TOKEN }
  zendesk:
    fields: { email: /email }
"#;
    let expected: Vec<(usize, &str)> = vec![
        (
            2,
            "connectors.generic:cinnox has `auth` but no `fields`: add JSON pointers to \
             the email, phone or external id of the person a delivery is about",
        ),
        (
            4,
            "connectors.generic:cinnox.auth.type: unknown auth type `hmac_sha265` (did you \
             mean `hmac_sha256`?); known: hmac_sha256, hmac_sha1, bearer, basic",
        ),
        (
            6,
            "connectors.generic:helpscout.auth.encoding must be hex or base64, not `b64`",
        ),
        (
            6,
            "connectors.generic:helpscout.auth.secret: secrets never go in this file; put \
             the value in an environment variable (or the DESKBRIDGE_SECRET_ARN secret) and \
             name it with `secret_env`",
        ),
        (
            6,
            "connectors.generic:helpscout.auth (hmac_sha256) needs `header`: the request \
             header that carries the signature",
        ),
        (
            6,
            "connectors.generic:helpscout.auth (hmac_sha256) needs `secret_env`: the \
             environment variable (or secret key) holding the signing secret",
        ),
        (
            7,
            "connectors.generic:helpscout.fields.email: `contact.email` is not a JSON \
             pointer (RFC 6901); pointers start with / (did you mean `/contact/email`?)",
        ),
        (
            7,
            "connectors.generic:helpscout.fields.phone: `/a~2` is not a JSON pointer (RFC \
             6901); `~` must be followed by 0 (for ~) or 1 (for /)",
        ),
        (
            7,
            "unknown key `mail` in connectors.generic:helpscout.fields (did you mean \
             `email`?); known keys: email, phone, name, first_name, last_name, \
             external_id, event_type, event_time, delivery_id, subject, channel, tags, score, properties",
        ),
        (
            7,
            "connectors.generic:helpscout.fields.name must be a JSON pointer such as \
             /contact/email, not `5`",
        ),
        (
            9,
            "connectors.generic:helpscout.events.conversation.created: `ticket.opened` is \
             not an event deskbridge knows (did you mean `ticket.reopened`?); known events: \
             ticket.created, ticket.closed, ticket.reopened, satisfaction_survey.created, \
             satisfaction_survey.responded, customer.created, ticket.snoozed, \
             ticket.unsnoozed, ai_agent.resolved, ai_agent.escalated, macro.applied, \
             rule.executed, data_event, person.deleted for a deletion, or ~ to update the \
             contact without an event",
        ),
        (
            10,
            "connectors.generic:helpscout.events.conversation.closed must be an event key \
             such as ticket.created, or ~, not a list",
        ),
        (
            11,
            "connectors.generic:freshdesk.fields.event_type is set but \
             connectors.generic:freshdesk.events maps no value, so every delivery would be \
             ignored; list the values (`contact.edited: ~` updates the contact without an \
             event)",
        ),
        (
            12,
            "connectors.generic:freshdesk.auth.token_env: `my token` is not a variable name \
             (letters, digits and _, such as CINNOX_WEBHOOK_SECRET); the file names the \
             variable, the variable holds the secret",
        ),
        (
            12,
            "unknown key `header` in connectors.generic:freshdesk.auth (bearer); known \
             keys: type, token_env",
        ),
        (
            15,
            "`Gladly` cannot name a generic source: it appears in the webhook URL \
             /webhooks/generic/<name>, so use lower-case letters, digits, - and _ only",
        ),
        (
            15,
            "connectors.generic:Gladly.events needs connectors.generic:Gladly.fields.event_type: \
             the pointer to the value its keys are matched against",
        ),
        (
            19,
            "connectors.generic:kayako has `fields` but no `auth`: deliveries must be signed \
             (type: hmac_sha256) or carry a bearer token (type: bearer)",
        ),
        (
            20,
            "connectors.generic:kayako.fields needs at least one of email, phone, \
             external_id: the pointers that say who a delivery is about",
        ),
        (
            21,
            "connectors.generic:front has `auth` but no `fields`: add JSON pointers to the \
             email, phone or external id of the person a delivery is about",
        ),
        (
            24,
            "connectors.zendesk.fields: `auth`, `fields`, `events` and `pull` are settings of \
             generic:<name> sources; zendesk has its own webhook format, API and secret \
             variables",
        ),
    ];
    let got = problems(text);
    for (g, (line, message)) in got.iter().zip(&expected) {
        assert_eq!(g, &(Some(*line), message.to_string()));
    }
    assert_eq!(got.len(), expected.len(), "{got:#?}");
}

#[test]
fn generic_sources_without_webhook_blocks_only_warn() {
    let cfg = parse(
        "g.yaml",
        "connectors:\n  generic:cinnox:\n    tag_lists: { vip: 7 }\n",
    )
    .expect("valid");
    assert!(cfg.generic.is_empty());
    assert_eq!(
        cfg.warnings,
        vec![Problem {
            line: Some(2),
            message: "connectors.generic:cinnox has no `auth` and `fields`, so POST \
                      /webhooks/generic/cinnox answers 404 (its mapping applies to nothing)"
                .into()
        }]
    );
    // A minimal webhook source: a bearer token and an email, every delivery an update.
    let minimal = "\
connectors:
  generic:forms:
    auth: { type: bearer, token_env: FORMS_TOKEN }
    fields: { email: /email }
";
    let cfg = parse("m.yaml", minimal).expect("valid");
    let forms = &cfg.generic["forms"];
    assert_eq!(forms.fields.email.as_deref(), Some("/email"));
    assert!(forms.events.is_empty());
    assert_eq!(cfg.warnings, vec![]);
}

#[test]
fn brevo_to_helpdesk_has_defaults_and_reads_each_key() {
    let defaults = parse("test.yaml", "").expect("valid").brevo_to_helpdesk;
    assert_eq!(defaults, BrevoToHelpdesk::default());
    assert_eq!(
        defaults.zendesk.unsubscribed_tag.as_deref(),
        Some("brevo_unsubscribed")
    );
    assert_eq!(
        defaults.zendesk.hard_bounce_tag.as_deref(),
        Some("brevo_hard_bounce")
    );
    assert!(defaults.intercom.enabled && defaults.intercom.unsubscribe);
    assert_eq!(
        defaults.intercom.hard_bounce_attribute.as_deref(),
        Some("brevo_hard_bounce")
    );

    assert_eq!(
        defaults.gorgias.unsubscribed_note.as_deref(),
        Some("Brevo: unsubscribed from marketing emails")
    );
    assert!(
        defaults.deleting().is_empty(),
        "deletions are off by default"
    );

    let text = "brevo_to_helpdesk:\n  zendesk:\n    unsubscribed_tag: do_not_mail\n    \
                hard_bounce_tag: ~\n    on_contact_deleted: delete\n  intercom:\n    \
                enabled: false\n    unsubscribe: false\n    \
                hard_bounce_attribute: \"Email bounced\"\n    on_contact_deleted: delete\n  \
                gorgias:\n    unsubscribed_note: \"Do not mail (Brevo)\"\n    \
                hard_bounce_note: \"\"\n    on_contact_deleted: Ignore\n";
    let cfg = parse("test.yaml", text).expect("valid").brevo_to_helpdesk;
    assert_eq!(
        cfg,
        BrevoToHelpdesk {
            zendesk: ZendeskWriteBack {
                enabled: true,
                unsubscribed_tag: Some("do_not_mail".into()),
                hard_bounce_tag: None,
                on_contact_deleted: OnContactDeleted::Delete,
            },
            intercom: IntercomWriteBack {
                enabled: false,
                unsubscribe: false,
                hard_bounce_attribute: Some("Email bounced".into()),
                on_contact_deleted: OnContactDeleted::Delete,
            },
            gorgias: GorgiasWriteBack {
                enabled: true,
                unsubscribed_note: Some("Do not mail (Brevo)".into()),
                hard_bounce_note: None,
                on_contact_deleted: OnContactDeleted::Ignore,
            },
        }
    );
    // A helpdesk switched off deletes nothing, whatever its on_contact_deleted says.
    assert_eq!(cfg.deleting(), vec!["zendesk"]);
}

#[test]
fn brevo_to_helpdesk_reports_unknown_keys_and_bad_values_with_their_lines() {
    let text = "brevo_to_helpdesk:\n  zendesk:\n    unsubscribed_tags: x\n    \
                hard_bounce_tag: two words\n  intercom:\n    unsubscribe: yes\n    \
                hard_bounce_attribute: a.b\n  freshdesk: {}\n  gorgias:\n    \
                on_contact_deleted: erase\n    hard_bounce_note: \"a\\nb\"\n";
    let found = problems(text);
    let lines: Vec<Option<usize>> = found.iter().map(|(l, _)| *l).collect();
    assert_eq!(
        lines,
        vec![
            Some(3),
            Some(4),
            Some(6),
            Some(7),
            Some(8),
            Some(10),
            Some(11)
        ],
        "{found:#?}"
    );
    assert!(
        found[0].1.contains("did you mean `unsubscribed_tag`"),
        "{}",
        found[0].1
    );
    assert!(found[1].1.contains("not a Zendesk tag"), "{}", found[1].1);
    assert!(found[2].1.contains("true or false"), "{}", found[2].1);
    assert!(
        found[3].1.contains("not an Intercom attribute"),
        "{}",
        found[3].1
    );
    assert!(
        found[4].1.contains("unknown key `freshdesk`"),
        "{}",
        found[4].1
    );
    assert!(
        found[5].1.contains("must be ignore or delete, not erase"),
        "{}",
        found[5].1
    );
    assert!(found[6].1.contains("one line"), "{}", found[6].1);
}

#[test]
fn the_readmes_brevo_to_helpdesk_block_says_the_defaults() {
    let readme = include_str!("../../../../README.md");
    let start = readme
        .find("```yaml\nbrevo_to_helpdesk:")
        .expect("the README shows the block")
        + "```yaml\n".len();
    let len = readme[start..].find("```").expect("the block ends");
    let cfg = parse("README.md", &readme[start..start + len]).expect("valid");
    assert_eq!(cfg.brevo_to_helpdesk, BrevoToHelpdesk::default());
}

#[test]
fn deskbridge_plan_says_what_the_brevo_to_helpdesk_block_does() {
    let cfg = parse(
        "test.yaml",
        "brevo_to_helpdesk:\n  zendesk: { enabled: false }\n",
    )
    .expect("valid");
    assert!(!cfg.brevo_to_helpdesk.zendesk.enabled);
    let said = cfg
        .lines
        .iter()
        .find(|s| s.key == "brevo_to_helpdesk")
        .expect("a line for the block");
    assert_eq!(said.line, 1);
    assert!(said.says.contains("write back"), "{}", said.says);
    assert!(
        said.says.contains("contact deletion deletes nothing"),
        "{}",
        said.says
    );
    let cfg = parse(
        "test.yaml",
        "brevo_to_helpdesk:\n  gorgias: { on_contact_deleted: delete }\n",
    )
    .expect("valid");
    let said = cfg
        .lines
        .iter()
        .find(|s| s.key == "brevo_to_helpdesk")
        .expect("a line for the block");
    assert!(
        said.says
            .contains("deletes the person with that email in gorgias"),
        "{}",
        said.says
    );
}

#[test]
fn actions_have_defaults_and_read_each_key() {
    let defaults = parse("test.yaml", "").expect("valid").actions;
    assert_eq!(defaults, Actions::default());
    assert!(defaults.zendesk.enabled);
    assert_eq!(defaults.zendesk.subject.to_string(), "{{subject}}");
    assert_eq!(defaults.zendesk.tags, vec!["brevo_automation"]);
    let text = "actions:\n  zendesk:\n    subject: \"Call {{contact.FIRSTNAME}} back\"\n    \
                comment: \"{{comment}} ({{email}})\"\n    requester_name: \"{{contact.NAME}}\"\n    \
                tags: [brevo_automation, renewal]\n    priority: High\n";
    let cfg = parse("test.yaml", text).expect("valid");
    let z = &cfg.actions.zendesk;
    assert_eq!(z.subject.to_string(), "Call {{contact.FIRSTNAME}} back");
    assert_eq!(z.comment.to_string(), "{{comment}} ({{email}})");
    assert_eq!(z.requester_name.to_string(), "{{contact.NAME}}");
    assert_eq!(z.tags, vec!["brevo_automation", "renewal"]);
    assert_eq!(z.priority.as_deref(), Some("high"));
    let none = parse(
        "test.yaml",
        "actions:\n  zendesk:\n    tags: ~\n    enabled: false\n",
    )
    .expect("valid");
    assert!(none.actions.zendesk.tags.is_empty());
    assert!(!none.actions.zendesk.enabled);
}

#[test]
fn actions_report_bad_templates_tags_priorities_and_keys_with_their_lines() {
    let text = "actions:\n  zendesk:\n    subject: \"Hi {{contact.FIRSTNAME\"\n    \
                comment: \"{{ticket.id}}\"\n    tags:\n      - ok_tag\n      - two words\n    \
                priority: soon\n    assignee: 5\n  intercom: {}\n  freshdesk: {}\n";
    let found = problems(text);
    let lines: Vec<Option<usize>> = found.iter().map(|(l, _)| *l).collect();
    assert_eq!(
        lines,
        vec![
            Some(3),
            Some(4),
            Some(7),
            Some(8),
            Some(9),
            Some(10),
            Some(11)
        ],
        "{found:#?}"
    );
    assert!(
        found[0]
            .1
            .contains("actions.zendesk.subject: `{{` at character 4 is never closed"),
        "{}",
        found[0].1
    );
    assert!(
        found[1].1.contains("`{{ticket.id}}` is not a placeholder"),
        "{}",
        found[1].1
    );
    assert!(
        found[2].1.contains("`two words` is not a Zendesk tag"),
        "{}",
        found[2].1
    );
    assert!(
        found[3]
            .1
            .contains("`soon` is not a Zendesk priority; use one of low, normal, high, urgent"),
        "{}",
        found[3].1
    );
    assert!(
        found[4]
            .1
            .contains("unknown key `assignee` in actions.zendesk"),
        "{}",
        found[4].1
    );
    assert!(
        found[5].1.contains("actions.intercom needs ticket_type_id"),
        "{}",
        found[5].1
    );
    assert!(
        found[6].1.contains("unknown key `freshdesk` in actions"),
        "{}",
        found[6].1
    );
}

#[test]
fn deskbridge_plan_says_what_the_actions_block_does() {
    let text = "actions:\n  zendesk:\n    subject: \"Follow up {{email}}\"\n    tags: [a, b]\n    \
                priority: urgent\n";
    let cfg = parse("test.yaml", text).expect("valid");
    let says = |key: &str| {
        cfg.lines
            .iter()
            .find(|s| s.key == key)
            .map(|s| (s.line, s.says.clone()))
            .unwrap_or_else(|| panic!("a line for {key}: {:#?}", cfg.lines))
    };
    assert!(
        says("actions")
            .1
            .contains("POST /actions/<helpdesk>/tickets")
    );
    let (line, z) = says("actions.zendesk");
    assert_eq!(line, 2);
    assert!(
        z.contains("one Zendesk ticket per contact, automation and day"),
        "{z}"
    );
    assert_eq!(
        says("actions.zendesk.subject"),
        (3, "the ticket's subject: Follow up {{email}}".to_string())
    );
    assert_eq!(says("actions.zendesk.tags").1, "the ticket is tagged a, b");
    assert_eq!(
        says("actions.zendesk.priority").1,
        "the ticket's priority is urgent"
    );
}

#[test]
fn the_readmes_actions_block_says_the_defaults() {
    let readme = include_str!("../../../../README.md");
    let start = readme
        .find("```yaml\nactions:")
        .expect("the README shows the block")
        + "```yaml\n".len();
    let len = readme[start..].find("```").expect("the block ends");
    let cfg = parse("README.md", &readme[start..start + len]).expect("valid");
    assert_eq!(cfg.actions, Actions::default());
}

#[test]
fn the_deletions_policy_defaults_to_unlink_and_refuses_unknown_values() {
    use crate::deletions::Deletions;
    let cfg = parse("empty.yaml", "").expect("valid");
    assert_eq!(cfg.mapping.deletions, Deletions::Unlink);
    let cfg = parse("d.yaml", "deletions: delete\n").expect("valid");
    assert_eq!(cfg.mapping.deletions, Deletions::Delete);
    assert!(
        cfg.lines
            .iter()
            .any(|s| s.line == 1 && s.says.contains("deleted when deskbridge created it")),
        "{:?}",
        cfg.lines
    );
    let cfg = parse("d.yaml", "deletions: Ignore\n").expect("valid");
    assert_eq!(cfg.mapping.deletions, Deletions::Ignore);
    assert_eq!(
        problems("default_region: US\ndeletions: erase\n"),
        vec![(
            Some(2),
            "deletions must be one of ignore, unlink, delete, not `erase`".to_string()
        )]
    );
}

#[test]
fn intercom_and_gorgias_tickets_read_their_own_keys() {
    let defaults = Actions::default();
    assert!(
        defaults.template(&Source::Intercom).is_none(),
        "off until typed"
    );
    assert!(defaults.intercom.tags.is_empty());
    assert_eq!(defaults.gorgias.channel, "api");
    assert_eq!(defaults.helpdesks(), vec!["zendesk", "gorgias"]);
    let text = "actions:\n  intercom:\n    ticket_type_id: 1234\n    subject: \"Call {{email}}\"\n  \
                gorgias:\n    channel: Email\n    tags: [vip, brevo_automation]\n    \
                comment: \"{{comment}}\"\n  zendesk:\n    enabled: false\n";
    let cfg = parse("test.yaml", text).expect("valid");
    let i = cfg
        .actions
        .template(&Source::Intercom)
        .expect("intercom tickets on");
    assert_eq!(i.ticket_type_id.as_deref(), Some("1234"));
    assert_eq!(i.subject.to_string(), "Call {{email}}");
    let g = cfg.actions.template(&Source::Gorgias).expect("gorgias on");
    assert_eq!(g.channel, "email");
    assert_eq!(g.tags, vec!["vip", "brevo_automation"]);
    assert_eq!(cfg.actions.helpdesks(), vec!["intercom", "gorgias"]);
    let off = parse(
        "test.yaml",
        "actions:\n  intercom:\n    enabled: false\n  gorgias:\n    enabled: false\n",
    )
    .expect("valid: a switched-off Intercom block needs no ticket type");
    assert!(off.actions.helpdesks() == vec!["zendesk"]);
}

#[test]
fn intercom_and_gorgias_report_their_errors_with_their_lines() {
    let text = "actions:\n  intercom:\n    ticket_type_id: bug\n    priority: high\n  \
                gorgias:\n    channel: fax\n    requester_name: x\n    tags: [\"two words\"]\n";
    let found = problems(text);
    let lines: Vec<Option<usize>> = found.iter().map(|(l, _)| *l).collect();
    assert_eq!(
        lines,
        vec![Some(2), Some(3), Some(4), Some(6), Some(7), Some(8)],
        "{found:#?}"
    );
    assert!(
        found[0].1.contains("actions.intercom needs ticket_type_id"),
        "{}",
        found[0].1
    );
    assert!(
        found[1]
            .1
            .contains("actions.intercom.ticket_type_id: `bug` is not an Intercom ticket type id"),
        "{}",
        found[1].1
    );
    assert!(
        found[2]
            .1
            .contains("unknown key `priority` in actions.intercom"),
        "{}",
        found[2].1
    );
    assert!(
        found[3].1.contains(
            "`fax` is not a channel deskbridge opens Gorgias tickets on; use one of api, email"
        ),
        "{}",
        found[3].1
    );
    assert!(
        found[4]
            .1
            .contains("unknown key `requester_name` in actions.gorgias"),
        "{}",
        found[4].1
    );
    assert!(
        found[5].1.contains("`two words` is not a Gorgias tag"),
        "{}",
        found[5].1
    );
}

#[test]
fn deskbridge_plan_says_what_intercom_and_gorgias_tickets_do() {
    let text = "actions:\n  intercom:\n    ticket_type_id: \"1234\"\n    \
                comment: \"{{comment}}\"\n  gorgias:\n    channel: api\n    tags: ~\n";
    let cfg = parse("test.yaml", text).expect("valid");
    let says = |key: &str| {
        cfg.lines
            .iter()
            .find(|s| s.key == key)
            .map(|s| (s.line, s.says.clone()))
            .unwrap_or_else(|| panic!("a line for {key}: {:#?}", cfg.lines))
    };
    let (line, i) = says("actions.intercom");
    assert_eq!(line, 2);
    assert!(
        i.contains("one Intercom ticket of type 1234 per contact, automation and day"),
        "{i}"
    );
    assert_eq!(
        says("actions.intercom.ticket_type_id"),
        (
            3,
            "the tickets are of Intercom ticket type 1234".to_string()
        )
    );
    assert!(
        says("actions.intercom.comment")
            .1
            .starts_with("the ticket's description"),
    );
    let (line, g) = says("actions.gorgias");
    assert_eq!(line, 5);
    assert!(
        g.contains("one Gorgias ticket per contact") && g.contains("api channel"),
        "{g}"
    );
    assert_eq!(says("actions.gorgias.tags").1, "the ticket gets no tags");
    assert!(says("actions.gorgias.channel").1.contains("api channel"));
}
