//! Carrying a [`WriteBack`] out in the helpdesks: the [`WriteBackApi`] port, and
//! [`HelpdeskWriteBack`] over the Zendesk, Intercom and Gorgias APIs configured in [`Settings`]
//! (and the tickets Brevo automations ask for, in Zendesk, Intercom or Gorgias, through the
//! `open` module). A contact deletion ([`Action::Forget`]) reaches only the helpdesks whose
//! `on_contact_deleted` is `delete`.
//!
//! Each helpdesk's outcome is its own: a person the helpdesk does not know is a no-op
//! ([`Written::NotFound`]), an outage or a rate limit is an error worth retrying (the caller
//! tries the whole write-back again later; every write is safe to repeat), a refusal is final.

use async_trait::async_trait;
use serde_json::json;

use super::open::TicketOpeners;
use super::{Action, TicketRequest, WriteBack};
use crate::config::Settings;
use crate::config::file::{BrevoToHelpdesk, OnContactDeleted};
use crate::helpdesk::LookupError;
use crate::helpdesk::gorgias::write_back::GorgiasCustomerWrites;
use crate::helpdesk::intercom::write_back::IntercomContactWrites;
use crate::helpdesk::zendesk::write_back::{ZendeskUserDeletes, ZendeskUserTags};
use crate::http as helpdesk_http;
use crate::identity::mask;
use crate::model::Source;

/// What a write-back did in one helpdesk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// This many people (Zendesk users, Intercom contacts, Gorgias customers) with the email
    /// were updated.
    Updated(usize),
    /// This many people with the email were deleted (a contact deletion passed on).
    Deleted(usize),
    /// The helpdesk has nobody with the email.
    NotFound,
}

/// One helpdesk's outcome of a write-back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelpdeskOutcome {
    pub helpdesk: Source,
    pub result: Result<Written, LookupError>,
}

/// The helpdesk's ticket for a [`TicketRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TicketOpened {
    /// Opened now; the helpdesk's ticket id.
    Created(String),
    /// A ticket with the request's `external_id` was there already (opened by an earlier try).
    Existing(String),
}

/// Writes Brevo events back into the helpdesks.
#[async_trait]
pub trait WriteBackApi: Send + Sync {
    /// Carries `write_back` out in every helpdesk that has something to write for it; one
    /// outcome per helpdesk written to (none when no helpdesk is configured for it).
    async fn apply(&self, write_back: &WriteBack) -> Vec<HelpdeskOutcome>;

    /// Opens `ticket` in its helpdesk unless a ticket with its `external_id` is there; `None`
    /// when that helpdesk cannot open tickets here (no API credentials, or switched off).
    async fn open_ticket(
        &self,
        ticket: &TicketRequest,
    ) -> Option<Result<TicketOpened, LookupError>> {
        let _ = ticket;
        None
    }
}

/// [`WriteBackApi`] over the helpdesk REST APIs: Zendesk, Intercom and Gorgias, each when its
/// API credentials are set, it is enabled, and its `brevo_to_helpdesk` block leaves it on.
pub struct HelpdeskWriteBack {
    /// `Err` keeps the reason the client could not be built; every write then fails as transient.
    client: Result<reqwest::Client, String>,
    /// The Zendesk account of the `ZENDESK_*` variables, then the further accounts the file
    /// names (`zendesk:brand2`), each with its own credentials; the same for Intercom.
    zendesk: Vec<(Source, ZendeskUserTags)>,
    intercom: Vec<(Source, IntercomContactWrites)>,
    /// The Gorgias store of the `GORGIAS_*` variables, then the further stores the file names
    /// (`gorgias:eu-store`), each with its own credentials.
    gorgias: Vec<(Source, GorgiasCustomerWrites)>,
    /// Deletions of Zendesk end-users, per account, when `on_contact_deleted` is `delete`.
    zendesk_deletes: Vec<(Source, ZendeskUserDeletes)>,
    /// Tickets of `POST /actions/<helpdesk>/tickets` (the `actions` block leaves them on).
    tickets: TicketOpeners,
    config: BrevoToHelpdesk,
}

impl HelpdeskWriteBack {
    /// Builds the HTTP client once. Zendesk writes share the settings' OAuth token.
    pub fn new(settings: &Settings) -> Self {
        let config = settings.file.brevo_to_helpdesk.clone();
        // Every account of `vendor` whose API is on, when `on` (the block's `enabled`).
        let accounts = |vendor: Source, on: bool| {
            let further: Vec<Source> = settings
                .account_sources()
                .filter(|s| s.is_account_of(&vendor))
                .collect();
            std::iter::once(vendor)
                .chain(further)
                .filter(move |account| on && settings.api_enabled(account))
        };
        let zendesk: Vec<(Source, ZendeskUserTags)> =
            accounts(Source::Zendesk, config.zendesk.enabled)
                .filter_map(|a| {
                    let auth = settings.zendesk_of(&a)?.auth()?;
                    Some((a, ZendeskUserTags::new(auth)))
                })
                .collect();
        let tickets = TicketOpeners::new(settings);
        let intercom = accounts(Source::Intercom, config.intercom.enabled)
            .filter_map(|a| {
                let writes = IntercomContactWrites::from_settings(settings.intercom_of(&a)?)?;
                Some((a, writes))
            })
            .collect();
        let gorgias = accounts(Source::Gorgias, config.gorgias.enabled)
            .filter_map(|store| {
                let writes = GorgiasCustomerWrites::from_settings(settings.gorgias_of(&store)?)?;
                Some((store, writes))
            })
            .collect();
        let zendesk_deletes = zendesk
            .iter()
            .filter(|_| config.zendesk.on_contact_deleted == OnContactDeleted::Delete)
            .filter_map(|(a, _)| {
                let auth = settings.zendesk_of(a)?.auth()?;
                Some((a.clone(), ZendeskUserDeletes::new(auth)))
            })
            .collect();
        let client = helpdesk_http::client().map_err(|e| {
            tracing::error!(error = %e, "helpdesk HTTP client unavailable; write-backs will fail");
            e.to_string()
        });
        HelpdeskWriteBack {
            client,
            zendesk,
            intercom,
            gorgias,
            zendesk_deletes,
            tickets,
            config,
        }
    }

    /// Whether tickets asked for by Brevo automations can be opened in `helpdesk`.
    pub fn opens_tickets(&self, helpdesk: &Source) -> bool {
        self.tickets.opens(helpdesk)
    }

    /// The helpdesks written to, for the start-up log.
    pub fn helpdesks(&self) -> Vec<Source> {
        let zendesk = self.zendesk.iter().map(|(a, _)| a.clone());
        let intercom = self.intercom.iter().map(|(a, _)| a.clone());
        let gorgias = self.gorgias.iter().map(|(a, _)| a.clone());
        zendesk.chain(intercom).chain(gorgias).collect()
    }

    /// Passes a Brevo contact deletion on to every helpdesk whose `on_contact_deleted` is
    /// `delete`: Zendesk end-users, Intercom contacts, Gorgias customers with the email.
    async fn forget(
        &self,
        client: &Result<&reqwest::Client, LookupError>,
        email: &str,
    ) -> Vec<HelpdeskOutcome> {
        let deletes = |on: OnContactDeleted| on == OnContactDeleted::Delete;
        let mut outcomes = Vec::new();
        for (account, zendesk) in &self.zendesk_deletes {
            let result = match client {
                Ok(client) => zendesk.delete_end_users(client, email).await.map(|done| {
                    if done.staff_kept > 0 {
                        tracing::info!(person = %mask(email), kept = done.staff_kept,
                            "zendesk: agents or admins with this email are never deleted");
                    }
                    deleted(done.deleted)
                }),
                Err(e) => Err(e.clone()),
            };
            outcomes.push(HelpdeskOutcome {
                helpdesk: account.clone(),
                result,
            });
        }
        let intercom_deletes = deletes(self.config.intercom.on_contact_deleted);
        for (account, intercom) in self.intercom.iter().filter(|_| intercom_deletes) {
            let result = match client {
                Ok(client) => intercom.delete_by_email(client, email).await.map(deleted),
                Err(e) => Err(e.clone()),
            };
            outcomes.push(HelpdeskOutcome {
                helpdesk: account.clone(),
                result,
            });
        }
        if deletes(self.config.gorgias.on_contact_deleted) {
            for (store, gorgias) in &self.gorgias {
                let result = match client {
                    Ok(client) => gorgias.delete_by_email(client, email).await.map(deleted),
                    Err(e) => Err(e.clone()),
                };
                outcomes.push(HelpdeskOutcome {
                    helpdesk: store.clone(),
                    result,
                });
            }
        }
        outcomes
    }
}

/// A count of people deleted as a [`Written`].
fn deleted(count: usize) -> Written {
    if count == 0 {
        Written::NotFound
    } else {
        Written::Deleted(count)
    }
}

/// A count of people updated as a [`Written`].
fn written(count: usize) -> Written {
    if count == 0 {
        Written::NotFound
    } else {
        Written::Updated(count)
    }
}

#[async_trait]
impl WriteBackApi for HelpdeskWriteBack {
    async fn apply(&self, write_back: &WriteBack) -> Vec<HelpdeskOutcome> {
        let email = write_back.email.as_str();
        let mut outcomes = Vec::new();
        let client = self
            .client
            .as_ref()
            .map_err(|e| LookupError::Transient(e.clone()));
        if write_back.action == Action::Forget {
            return self.forget(&client, email).await;
        }
        let zendesk_tag = match write_back.action {
            Action::Unsubscribe => self.config.zendesk.unsubscribed_tag.as_deref(),
            Action::HardBounce => self.config.zendesk.hard_bounce_tag.as_deref(),
            Action::Forget => None,
        };
        if let Some(tag) = zendesk_tag {
            for (account, zendesk) in &self.zendesk {
                let result = match &client {
                    Ok(client) => zendesk.tag_users(client, email, tag).await.map(written),
                    Err(e) => Err(e.clone()),
                };
                outcomes.push(HelpdeskOutcome {
                    helpdesk: account.clone(),
                    result,
                });
            }
        }
        let intercom_fields = match write_back.action {
            Action::Unsubscribe => self
                .config
                .intercom
                .unsubscribe
                .then(|| json!({"unsubscribed_from_emails": true})),
            Action::HardBounce => self
                .config
                .intercom
                .hard_bounce_attribute
                .as_deref()
                .map(|name| json!({"custom_attributes": {name: true}})),
            Action::Forget => None,
        };
        if let Some(fields) = &intercom_fields {
            for (account, intercom) in &self.intercom {
                let result = match &client {
                    Ok(client) => intercom
                        .update_by_email(client, email, fields)
                        .await
                        .map(written),
                    Err(e) => Err(e.clone()),
                };
                outcomes.push(HelpdeskOutcome {
                    helpdesk: account.clone(),
                    result,
                });
            }
        }
        let gorgias_note = match write_back.action {
            Action::Unsubscribe => self.config.gorgias.unsubscribed_note.as_deref(),
            Action::HardBounce => self.config.gorgias.hard_bounce_note.as_deref(),
            Action::Forget => None,
        };
        if let Some(line) = gorgias_note {
            for (store, gorgias) in &self.gorgias {
                let result = match &client {
                    Ok(client) => gorgias
                        .add_note_line(client, email, line)
                        .await
                        .map(written),
                    Err(e) => Err(e.clone()),
                };
                outcomes.push(HelpdeskOutcome {
                    helpdesk: store.clone(),
                    result,
                });
            }
        }
        outcomes
    }

    async fn open_ticket(
        &self,
        ticket: &TicketRequest,
    ) -> Option<Result<TicketOpened, LookupError>> {
        if !self.tickets.opens(&ticket.helpdesk) {
            return None;
        }
        match &self.client {
            Ok(client) => self.tickets.open(client, ticket).await,
            Err(e) => Some(Err(LookupError::Transient(e.clone()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Vars;
    use wiremock::matchers::{body_json, header, method, path, query_param};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    fn settings(server: &MockServer, config: Option<&str>) -> Settings {
        let uri = server.uri();
        let mut pairs = vec![
            ("ZENDESK_BASE_URL", uri.as_str()),
            ("ZENDESK_OAUTH_TOKEN", "zd-oauth"),
            ("INTERCOM_BASE_URL", uri.as_str()),
            ("INTERCOM_ACCESS_TOKEN", "ic-token"),
        ];
        if config.is_some() {
            pairs.push(("DESKBRIDGE_CONFIG", "secretsmanager:arn:test"));
        }
        let mut vars = Vars::from_pairs(pairs);
        if let Some(text) = config {
            vars = vars.with_config_text(text);
        }
        Settings::from_vars(&vars).expect("settings")
    }

    fn bounce(email: &str) -> WriteBack {
        WriteBack {
            id: "hard_bounce:h:1:-:1".into(),
            action: Action::HardBounce,
            event: "hard_bounce".into(),
            email: email.into(),
            occurred_at: None,
        }
    }

    #[tokio::test]
    async fn a_hard_bounce_tags_the_zendesk_user_and_sets_the_intercom_attribute() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/api/v2/users/search.json"))
            .and(query_param("query", "email:bob@example.com"))
            .and(header("authorization", "Bearer zd-oauth"))
            .respond_with(ResponseTemplate::new(200).set_body_json(
                json!({"users": [{"id": 35436, "email": "bob@example.com"}], "count": 1}),
            ))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("PUT"))
            .and(path("/api/v2/users/35436/tags.json"))
            .and(body_json(json!({"tags": ["brevo_hard_bounce"]})))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(json!({"tags": ["brevo_hard_bounce"]})),
            )
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/contacts/search"))
            .and(header("authorization", "Bearer ic-token"))
            .and(header("intercom-version", "2.11"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "type": "list", "total_count": 1,
                "data": [{"type": "contact", "id": "6329bd9ffe4e", "email": "bob@example.com"}]
            })))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("PUT"))
            .and(path("/contacts/6329bd9ffe4e"))
            .and(body_json(
                json!({"custom_attributes": {"brevo_hard_bounce": true}}),
            ))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(json!({"type": "contact", "id": "6329bd9ffe4e"})),
            )
            .expect(1)
            .mount(&server)
            .await;
        let writer = HelpdeskWriteBack::new(&settings(&server, None));
        assert_eq!(writer.helpdesks(), vec![Source::Zendesk, Source::Intercom]);
        let outcomes = writer.apply(&bounce("bob@example.com")).await;
        assert_eq!(
            outcomes,
            vec![
                HelpdeskOutcome {
                    helpdesk: Source::Zendesk,
                    result: Ok(Written::Updated(1))
                },
                HelpdeskOutcome {
                    helpdesk: Source::Intercom,
                    result: Ok(Written::Updated(1))
                },
            ]
        );
    }

    #[tokio::test]
    async fn nobody_found_is_not_an_error_and_an_outage_is_worth_retrying() {
        let server = MockServer::start().await;
        Mock::given(path("/api/v2/users/search.json"))
            .respond_with(ResponseTemplate::new(503))
            .mount(&server)
            .await;
        Mock::given(path("/contacts/search"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(json!({"type": "list", "total_count": 0, "data": []})),
            )
            .mount(&server)
            .await;
        let writer = HelpdeskWriteBack::new(&settings(&server, None));
        let outcomes = writer.apply(&bounce("nobody@example.com")).await;
        assert_eq!(outcomes.len(), 2);
        let zendesk = outcomes[0].result.as_ref().expect_err("503");
        assert!(zendesk.is_retryable(), "{zendesk}");
        assert_eq!(outcomes[1].result, Ok(Written::NotFound));
    }

    #[tokio::test]
    async fn the_configuration_turns_writes_off() {
        let server = MockServer::start().await;
        let config = "brevo_to_helpdesk:\n  zendesk:\n    hard_bounce_tag: ~\n  intercom:\n    \
                      enabled: false\n";
        let writer = HelpdeskWriteBack::new(&settings(&server, Some(config)));
        assert_eq!(writer.helpdesks(), vec![Source::Zendesk]);
        assert!(writer.apply(&bounce("bob@example.com")).await.is_empty());
        let requests = server.received_requests().await.unwrap_or_default();
        assert!(requests.is_empty(), "nothing was asked: {requests:?}");
    }

    /// Settings of all three helpdesks on `server`, with the configuration file `config`.
    fn all_three(server: &MockServer, config: &str) -> Settings {
        let uri = server.uri();
        let vars = Vars::from_pairs([
            ("ZENDESK_BASE_URL", uri.as_str()),
            ("ZENDESK_OAUTH_TOKEN", "zd-oauth"),
            ("INTERCOM_BASE_URL", uri.as_str()),
            ("INTERCOM_ACCESS_TOKEN", "ic-token"),
            ("GORGIAS_BASE_URL", uri.as_str()),
            ("GORGIAS_EMAIL", "agent@shop.example"),
            ("GORGIAS_API_KEY", "gorgias-key"),
            ("DESKBRIDGE_CONFIG", "secretsmanager:arn:test"),
        ])
        .with_config_text(config);
        Settings::from_vars(&vars).expect("settings")
    }

    fn forget(email: &str) -> WriteBack {
        WriteBack {
            id: "contact_deleted:h:-:1".into(),
            action: Action::Forget,
            event: "contact_deleted".into(),
            email: email.into(),
            occurred_at: None,
        }
    }

    #[tokio::test]
    async fn an_unsubscribe_adds_the_line_to_the_gorgias_customers_note() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/api/customers"))
            .and(query_param("email", "ann@example.com"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "object": "list", "uri": "/api/customers",
                "data": [{"id": 3924, "email": "ann@example.com", "note": "Prefers phone"}],
                "meta": {"prev_cursor": null, "next_cursor": null}
            })))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("PUT"))
            .and(path("/api/customers/3924"))
            .and(body_json(json!({"note": "Prefers phone\nDo not mail"})))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(json!({"id": 3924, "note": "…"})),
            )
            .expect(1)
            .mount(&server)
            .await;
        let config = "brevo_to_helpdesk:\n  zendesk: { enabled: false }\n  intercom: \
                      { enabled: false }\n  gorgias: { unsubscribed_note: Do not mail }\n";
        let writer = HelpdeskWriteBack::new(&all_three(&server, config));
        assert_eq!(writer.helpdesks(), vec![Source::Gorgias]);
        let mut unsubscribe = bounce("ann@example.com");
        unsubscribe.action = Action::Unsubscribe;
        assert_eq!(
            writer.apply(&unsubscribe).await,
            vec![HelpdeskOutcome {
                helpdesk: Source::Gorgias,
                result: Ok(Written::Updated(1))
            }]
        );
        // A contact deletion with the default on_contact_deleted (ignore) asks nothing.
        assert!(writer.apply(&forget("ann@example.com")).await.is_empty());
    }

    #[tokio::test]
    async fn further_zendesk_and_intercom_accounts_are_written_with_their_own_credentials() {
        let first = MockServer::start().await;
        let brand2 = MockServer::start().await;
        for (server, token, user) in [(&first, "zd-oauth", 1), (&brand2, "brand2-oauth", 2)] {
            Mock::given(method("GET"))
                .and(path("/api/v2/users/search.json"))
                .and(header("authorization", format!("Bearer {token}").as_str()))
                .respond_with(ResponseTemplate::new(200).set_body_json(
                    json!({"users": [{"id": user, "email": "bob@example.com"}], "count": 1}),
                ))
                .expect(1)
                .mount(server)
                .await;
            Mock::given(method("PUT"))
                .and(path(format!("/api/v2/users/{user}/tags.json")))
                .and(body_json(json!({"tags": ["brevo_unsubscribed"]})))
                .respond_with(ResponseTemplate::new(200).set_body_json(json!({"tags": []})))
                .expect(1)
                .mount(server)
                .await;
        }
        for (server, token, contact) in [(&first, "ic-token", "c1"), (&brand2, "eu-token", "c2")] {
            Mock::given(method("POST"))
                .and(path("/contacts/search"))
                .and(header("authorization", format!("Bearer {token}").as_str()))
                .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                    "type": "list", "total_count": 1,
                    "data": [{"type": "contact", "id": contact, "email": "bob@example.com"}]
                })))
                .expect(1)
                .mount(server)
                .await;
            Mock::given(method("PUT"))
                .and(path(format!("/contacts/{contact}")))
                .and(body_json(json!({"unsubscribed_from_emails": true})))
                .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": contact})))
                .expect(1)
                .mount(server)
                .await;
        }
        let (first_uri, other_uri) = (first.uri(), brand2.uri());
        let vars = Vars::from_pairs([
            ("ZENDESK_BASE_URL", first_uri.as_str()),
            ("ZENDESK_OAUTH_TOKEN", "zd-oauth"),
            ("INTERCOM_BASE_URL", first_uri.as_str()),
            ("INTERCOM_ACCESS_TOKEN", "ic-token"),
            ("ZENDESK_BRAND2_BASE_URL", other_uri.as_str()),
            ("ZENDESK_BRAND2_OAUTH_TOKEN", "brand2-oauth"),
            ("INTERCOM_EU_BASE_URL", other_uri.as_str()),
            ("INTERCOM_EU_ACCESS_TOKEN", "eu-token"),
            ("DESKBRIDGE_CONFIG", "secretsmanager:arn:test"),
        ])
        .with_config_text("connectors:\n  zendesk:brand2: {}\n  intercom:eu: {}\n");
        let writer = HelpdeskWriteBack::new(&Settings::from_vars(&vars).expect("settings"));
        let brand2_account: Source = "zendesk:brand2".parse().expect("an account");
        let eu: Source = "intercom:eu".parse().expect("an account");
        let unsubscribe = WriteBack {
            action: Action::Unsubscribe,
            event: "unsubscribed".into(),
            ..bounce("bob@example.com")
        };
        let outcomes: Vec<Source> = writer
            .apply(&unsubscribe)
            .await
            .into_iter()
            .map(|o| {
                assert_eq!(o.result, Ok(Written::Updated(1)), "{o:?}");
                o.helpdesk
            })
            .collect();
        assert_eq!(
            outcomes,
            vec![Source::Zendesk, brand2_account, Source::Intercom, eu]
        );
    }

    #[tokio::test]
    async fn a_further_gorgias_store_gets_the_line_with_its_own_credentials() {
        let first = MockServer::start().await;
        let eu = MockServer::start().await;
        for (server, user, id) in [
            (&first, "agent@shop.example", 3924),
            (&eu, "eu@shop.example", 77),
        ] {
            Mock::given(method("GET"))
                .and(path("/api/customers"))
                .and(wiremock::matchers::basic_auth(user, "key"))
                .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                    "object": "list", "uri": "/api/customers",
                    "data": [{"id": id, "email": "ann@example.com", "note": null}],
                    "meta": {"prev_cursor": null, "next_cursor": null}
                })))
                .expect(1)
                .mount(server)
                .await;
            Mock::given(method("PUT"))
                .and(path(format!("/api/customers/{id}")))
                .and(body_json(
                    json!({"note": "Brevo: email address hard-bounced"}),
                ))
                .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": id})))
                .expect(1)
                .mount(server)
                .await;
        }
        let (first_uri, eu_uri) = (first.uri(), eu.uri());
        let vars = Vars::from_pairs([
            ("GORGIAS_BASE_URL", first_uri.as_str()),
            ("GORGIAS_EMAIL", "agent@shop.example"),
            ("GORGIAS_API_KEY", "key"),
            ("GORGIAS_EU_STORE_BASE_URL", eu_uri.as_str()),
            ("GORGIAS_EU_STORE_EMAIL", "eu@shop.example"),
            ("GORGIAS_EU_STORE_API_KEY", "key"),
            ("DESKBRIDGE_CONFIG", "secretsmanager:arn:test"),
        ])
        .with_config_text("connectors:\n  gorgias: {}\n  gorgias:eu-store: {}\n");
        let writer = HelpdeskWriteBack::new(&Settings::from_vars(&vars).expect("settings"));
        let eu_store: Source = "gorgias:eu-store".parse().expect("an account");
        assert_eq!(writer.helpdesks(), vec![Source::Gorgias, eu_store.clone()]);
        let outcomes = writer.apply(&bounce("ann@example.com")).await;
        assert_eq!(
            outcomes,
            vec![
                HelpdeskOutcome {
                    helpdesk: Source::Gorgias,
                    result: Ok(Written::Updated(1))
                },
                HelpdeskOutcome {
                    helpdesk: eu_store,
                    result: Ok(Written::Updated(1))
                },
            ]
        );
    }

    #[tokio::test]
    async fn a_contact_deletion_deletes_end_users_contacts_and_customers_but_never_agents() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/api/v2/users/search.json"))
            .and(query_param("query", "email:gone@example.com"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"users": [
                {"id": 35436, "email": "gone@example.com", "role": "end-user"},
                {"id": 35437, "email": "gone@example.com", "role": "agent"}
            ], "count": 2})))
            .mount(&server)
            .await;
        Mock::given(method("DELETE"))
            .and(path("/api/v2/users/35436.json"))
            .and(header("authorization", "Bearer zd-oauth"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"user": {
                "id": 35436, "email": "gone@example.com", "active": false
            }})))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/contacts/search"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "type": "list", "total_count": 1,
                "data": [{"type": "contact", "id": "6329bd9ffe4e", "email": "gone@example.com"}]
            })))
            .mount(&server)
            .await;
        Mock::given(method("DELETE"))
            .and(path("/contacts/6329bd9ffe4e"))
            .and(header("authorization", "Bearer ic-token"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "id": "6329bd9ffe4e", "type": "contact", "deleted": true
            })))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/api/customers"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "object": "list", "uri": "/api/customers", "data": [],
                "meta": {"prev_cursor": null, "next_cursor": null}
            })))
            .mount(&server)
            .await;
        let config = "brevo_to_helpdesk:\n  zendesk: { on_contact_deleted: delete }\n  \
                      intercom: { on_contact_deleted: delete }\n  gorgias: \
                      { on_contact_deleted: delete }\n";
        let writer = HelpdeskWriteBack::new(&all_three(&server, config));
        let outcomes = writer.apply(&forget("gone@example.com")).await;
        assert_eq!(
            outcomes,
            vec![
                HelpdeskOutcome {
                    helpdesk: Source::Zendesk,
                    result: Ok(Written::Deleted(1))
                },
                HelpdeskOutcome {
                    helpdesk: Source::Intercom,
                    result: Ok(Written::Deleted(1))
                },
                HelpdeskOutcome {
                    helpdesk: Source::Gorgias,
                    result: Ok(Written::NotFound)
                },
            ]
        );
        let requests = server.received_requests().await.unwrap_or_default();
        assert!(
            !requests
                .iter()
                .any(|r| r.url.path() == "/api/v2/users/35437.json"),
            "the agent was left alone"
        );
    }

    fn ticket(external_id: &str) -> TicketRequest {
        TicketRequest {
            helpdesk: Source::Zendesk,
            external_id: external_id.into(),
            email: "jane@example.com".into(),
            name: "Jane Doe".into(),
            subject: "Renewal call".into(),
            comment: "Please call Jane back.".into(),
            tags: vec!["brevo_automation".into()],
            priority: Some("high".into()),
            automation: Some("42".into()),
        }
    }

    #[tokio::test]
    async fn a_ticket_is_opened_with_its_external_id_unless_zendesk_has_it() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/api/v2/tickets.json"))
            .and(query_param("external_id", "deskbridge-new"))
            .and(header("authorization", "Bearer zd-oauth"))
            .respond_with(ResponseTemplate::new(200).set_body_json(
                json!({"tickets": [], "next_page": null, "previous_page": null, "count": 0}),
            ))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/api/v2/tickets.json"))
            .and(header("authorization", "Bearer zd-oauth"))
            .and(body_json(json!({"ticket": {
                "subject": "Renewal call",
                "comment": {"body": "Please call Jane back."},
                "requester": {"email": "jane@example.com", "name": "Jane Doe"},
                "external_id": "deskbridge-new",
                "tags": ["brevo_automation"],
                "priority": "high"
            }})))
            .respond_with(ResponseTemplate::new(201).set_body_json(json!({
                "ticket": {"id": 35436, "external_id": "deskbridge-new", "status": "new"},
                "audit": {"id": 1, "events": []}
            })))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/api/v2/tickets.json"))
            .and(query_param("external_id", "deskbridge-old"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "tickets": [{"id": 35001, "external_id": "deskbridge-old", "status": "open"}],
                "next_page": null, "previous_page": null, "count": 1
            })))
            .expect(1)
            .mount(&server)
            .await;
        let writer = HelpdeskWriteBack::new(&settings(&server, None));
        assert!(writer.opens_tickets(&Source::Zendesk));
        assert!(!writer.opens_tickets(&Source::Intercom));
        assert_eq!(
            writer.open_ticket(&ticket("deskbridge-new")).await,
            Some(Ok(TicketOpened::Created("35436".into())))
        );
        assert_eq!(
            writer.open_ticket(&ticket("deskbridge-old")).await,
            Some(Ok(TicketOpened::Existing("35001".into())))
        );
        let mut elsewhere = ticket("deskbridge-x");
        elsewhere.helpdesk = Source::Intercom;
        assert_eq!(writer.open_ticket(&elsewhere).await, None);
    }

    #[tokio::test]
    async fn a_zendesk_outage_or_rate_limit_is_worth_retrying_and_a_refusal_is_not() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/api/v2/tickets.json"))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(json!({"tickets": [], "count": 0})),
            )
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/api/v2/tickets.json"))
            .respond_with(ResponseTemplate::new(503))
            .up_to_n_times(1)
            .with_priority(1)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/api/v2/tickets.json"))
            .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "30"))
            .up_to_n_times(1)
            .with_priority(2)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/api/v2/tickets.json"))
            .respond_with(ResponseTemplate::new(422).set_body_json(json!({
                "error": "RecordInvalid", "description": "Record validation errors"
            })))
            .with_priority(3)
            .mount(&server)
            .await;
        let writer = HelpdeskWriteBack::new(&settings(&server, None));
        let outage = writer.open_ticket(&ticket("t")).await.expect("zendesk");
        assert!(
            outage.as_ref().is_err_and(LookupError::is_retryable),
            "{outage:?}"
        );
        let limited = writer.open_ticket(&ticket("t")).await.expect("zendesk");
        assert_eq!(
            limited.as_ref().err().and_then(LookupError::retry_after),
            Some(std::time::Duration::from_secs(30))
        );
        let refused = writer.open_ticket(&ticket("t")).await.expect("zendesk");
        assert!(refused.is_err_and(|e| !e.is_retryable()));
        let off = "actions:\n  zendesk:\n    enabled: false\n";
        let writer = HelpdeskWriteBack::new(&settings(&server, Some(off)));
        assert!(!writer.opens_tickets(&Source::Zendesk));
        assert_eq!(writer.open_ticket(&ticket("t")).await, None);
    }
}
