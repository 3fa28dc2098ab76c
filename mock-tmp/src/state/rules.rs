//! The automated token lifecycle, as TMP applies it:
//!
//! - card **blocked** → its active tokens are suspended, with the block recorded as one of the
//!   token's suspenders (a token already suspended gets the block added);
//! - card **unblocked** → the block is lifted; a token resumes only when nobody else (issuer,
//!   cardholder) still holds it suspended — the multi-suspender rule; an unblock with
//!   `propagateToTokens: false` leaves the tokens suspended, held by the issuer instead;
//! - card **closed** → its tokens are deactivated and `CARD_REMOVED_BY_ISSUER` is sent;
//! - card **replaced** → the new card is ACTIVE and the old one CLOSED (as the adapter records
//!   them); the old card's tokens move to the new card, and a suspension that was only the old
//!   card's block is lifted (nothing would ever unblock the new card);
//! - card **renewed** → the expiry is updated (tokens keep working; the issuer hears of it).
//!
//! Every status change becomes a token event for the issuer, naming who caused it: the issuer
//! for its own actions and its card's changes, the cardholder, or the token requestor.

use std::collections::BTreeSet;

use time::OffsetDateTime;
use tmp_protocol::enums::{
    ChangeInitiator, IssuerCardStatus, NotificationType, ReasonCode, ReplacementTokens, TokenStatus,
};
use tmp_protocol::sensitive::{Expiry, Pan};
use tmp_protocol::tmp_api::{ActionInitiator, CardMetadata, TokenAction, TokenInfo};

use super::{Card, Cause, Effect, MockState, Suspender, Token};
use tmp_edge::error::ApiError;

fn suspender(initiator: ActionInitiator) -> Suspender {
    match initiator {
        ActionInitiator::Issuer => Suspender::Issuer,
        ActionInitiator::Cardholder => Suspender::Cardholder,
    }
}

fn suspender_word(who: Suspender) -> &'static str {
    match who {
        Suspender::Issuer => "issuer",
        Suspender::Cardholder => "cardholder",
        Suspender::TokenRequestor => "token requestor",
        Suspender::CardBlock => "card's block",
    }
}

/// Changes a token's status and records the event.
fn set_status(token: &mut Token, status: TokenStatus, cause: &Cause, now: OffsetDateTime, effects: &mut Vec<Effect>) {
    let previous = token.status;
    token.status = status;
    token.updated_at = now;
    if status != TokenStatus::Suspended {
        token.suspenders.clear();
    }
    effects.push(Effect::TokenEvent {
        token: token.info(),
        tokenization_id: Some(token.tokenization_id.clone()),
        previous: Some(previous),
        cause: cause.clone(),
        at: now,
    });
}

/// A change the issuer's card caused (blocked, unblocked, closed, replaced, renewed).
fn card_change(reason: &str) -> Cause {
    Cause::new(ChangeInitiator::Issuer, reason)
}

impl MockState {
    fn token_mut(&mut self, token_id: &str) -> Result<&mut Token, ApiError> {
        self.tokens.get_mut(token_id).ok_or_else(|| ApiError::UnknownResource(format!("no token `{token_id}`")))
    }

    /// A card the mock knows (it has a record or tokens), or 404.
    fn known_card(&mut self, card_id: &str) -> Result<&mut Card, ApiError> {
        if !self.cards.contains_key(card_id) && !self.tokens.values().any(|t| t.card_id == card_id) {
            return Err(ApiError::UnknownResource(format!("no card `{card_id}`")));
        }
        Ok(self.card_mut_or_create(card_id))
    }

    /// `POST /tmp-api/v1/tokens/{tokenId}/{action}`: the issuer, for itself or the cardholder,
    /// with a coded reason.
    pub fn token_action(
        &mut self,
        token_id: &str,
        action: TokenAction,
        initiator: ActionInitiator,
        reason_code: ReasonCode,
        reason: &str,
    ) -> Result<(TokenInfo, Vec<Effect>), ApiError> {
        let who = suspender(initiator);
        self.token_action_by(token_id, action, who, &Cause::new(who.initiator(), reason).coded(reason_code))
    }

    /// A token action by `who` (the wallet's own suspensions come from the simulator).
    pub fn token_action_by(
        &mut self,
        token_id: &str,
        action: TokenAction,
        who: Suspender,
        cause: &Cause,
    ) -> Result<(TokenInfo, Vec<Effect>), ApiError> {
        let now = OffsetDateTime::now_utc();
        let card_blocked = {
            let card_id = self.token_mut(token_id)?.card_id.clone();
            self.cards.get(&card_id).is_some_and(|c| c.status == IssuerCardStatus::Blocked)
        };
        let token = self.token_mut(token_id)?;
        let mut effects = Vec::new();
        let conflict = |what: &str| {
            Err(ApiError::Conflict(format!("cannot {what} a token that is {}", token_status_word(token.status))))
        };
        match action {
            TokenAction::Activate => {
                if token.status != TokenStatus::Inactive {
                    return conflict("activate");
                }
                if card_blocked {
                    return Err(ApiError::Conflict("the card is blocked".into()));
                }
                token.otp = None;
                set_status(token, TokenStatus::Active, cause, now, &mut effects);
                effects.push(Effect::token_notification(NotificationType::TokenActivated, token, now));
            }
            TokenAction::Suspend => match token.status {
                TokenStatus::Active => {
                    set_status(token, TokenStatus::Suspended, cause, now, &mut effects);
                    token.suspenders.insert(who);
                }
                // Already suspended: this party now holds it too; nothing changes on the wire.
                TokenStatus::Suspended if !token.suspenders.contains(&who) => {
                    token.suspenders.insert(who);
                    token.updated_at = now;
                }
                _ => return conflict("suspend"),
            },
            TokenAction::Resume => {
                if token.status != TokenStatus::Suspended || !token.suspenders.contains(&who) {
                    return Err(ApiError::Conflict(format!(
                        "the token is not suspended by the {}",
                        suspender_word(who)
                    )));
                }
                token.suspenders.remove(&who);
                token.updated_at = now;
                if token.suspenders.is_empty() {
                    set_status(token, TokenStatus::Active, cause, now, &mut effects);
                }
            }
            TokenAction::Deactivate => {
                if token.status == TokenStatus::Deactivated {
                    return conflict("deactivate");
                }
                token.otp = None;
                set_status(token, TokenStatus::Deactivated, cause, now, &mut effects);
            }
        }
        Ok((token.info(), effects))
    }

    /// `POST /tmp-api/v1/cards/{cardId}/status` and `PATCH /lifecycle/v1/cards/{cardId}`.
    /// Returns how many tokens changed. Without `propagate` a block or unblock changes the card
    /// alone; a closure always reaches its tokens (they cannot outlive the card).
    pub fn set_card_status(
        &mut self,
        card_id: &str,
        status: IssuerCardStatus,
        reason: Option<&str>,
        propagate: bool,
    ) -> Result<(u32, Vec<Effect>), ApiError> {
        let now = OffsetDateTime::now_utc();
        let card = self.known_card(card_id)?;
        if card.status == IssuerCardStatus::Closed && status != IssuerCardStatus::Closed {
            return Err(ApiError::Conflict("a closed card cannot change status".into()));
        }
        card.status = status;
        card.updated_at = now;
        if !propagate && status != IssuerCardStatus::Closed {
            if status == IssuerCardStatus::Active {
                // An unblock that is not to reach the tokens: those an earlier block suspended
                // stay suspended, now held by the issuer — who chose so and can resume them —
                // rather than by a block that no longer exists and nothing would ever lift.
                for token_id in self.tokens_of(card_id) {
                    let Some(token) = self.tokens.get_mut(&token_id) else { continue };
                    if token.suspenders.remove(&Suspender::CardBlock) {
                        token.suspenders.insert(Suspender::Issuer);
                        token.updated_at = now;
                    }
                }
            }
            return Ok((0, Vec::new()));
        }
        let mut effects = Vec::new();
        let mut affected = 0;
        for token_id in self.tokens_of(card_id) {
            let Some(token) = self.tokens.get_mut(&token_id) else { continue };
            let before = effects.len();
            match status {
                IssuerCardStatus::Blocked => match token.status {
                    TokenStatus::Active => {
                        let cause = card_change(reason.unwrap_or("CARD_BLOCKED"));
                        set_status(token, TokenStatus::Suspended, &cause, now, &mut effects);
                        token.suspenders.insert(Suspender::CardBlock);
                    }
                    TokenStatus::Suspended => {
                        token.suspenders.insert(Suspender::CardBlock);
                    }
                    _ => {}
                },
                IssuerCardStatus::Active => {
                    if token.status == TokenStatus::Suspended && token.suspenders.remove(&Suspender::CardBlock) {
                        token.updated_at = now;
                        if token.suspenders.is_empty() {
                            let cause = card_change(reason.unwrap_or("CARD_UNBLOCKED"));
                            set_status(token, TokenStatus::Active, &cause, now, &mut effects);
                        }
                    }
                }
                IssuerCardStatus::Closed => {
                    if token.status != TokenStatus::Deactivated {
                        token.otp = None;
                        let cause = card_change(reason.unwrap_or("CARD_CLOSED"));
                        set_status(token, TokenStatus::Deactivated, &cause, now, &mut effects);
                        effects.push(Effect::token_notification(NotificationType::CardRemovedByIssuer, token, now));
                    }
                }
            }
            if effects.len() > before {
                affected += 1;
            }
        }
        Ok((affected, effects))
    }

    /// `POST /tmp-api/v1/cards/{cardId}/replace` and `POST /lifecycle/v1/cards/{cardId}/replace`:
    /// the new card, ACTIVE, takes the old card's contact and — with `ReplacementTokens::Move` —
    /// its tokens; with `Deactivate` they are deactivated (`CARD_REMOVED_BY_ISSUER`) and the
    /// wallets provision the new card afresh. The old card is CLOSED.
    pub fn replace_card(
        &mut self,
        card_id: &str,
        new_card_id: &str,
        pan: Pan,
        expiry: Expiry,
        tokens: ReplacementTokens,
    ) -> Result<(u32, Vec<Effect>), ApiError> {
        let now = OffsetDateTime::now_utc();
        if card_id == new_card_id {
            return Err(ApiError::validation("`newCardId` must differ from the card being replaced"));
        }
        if self.cards.contains_key(new_card_id) {
            return Err(ApiError::Conflict(format!("card `{new_card_id}` already exists")));
        }
        let old = self.known_card(card_id)?;
        if old.replaced_by.is_some() {
            return Err(ApiError::Conflict("the card was already replaced".into()));
        }
        old.replaced_by = Some(new_card_id.to_owned());
        old.status = IssuerCardStatus::Closed;
        old.updated_at = now;
        // A new plastic: active whatever the old card's state (a lost card is blocked, then
        // replaced).
        let mut new = Card::new(new_card_id, IssuerCardStatus::Active);
        new.cardholder = old.cardholder.clone();
        new.product_category = old.product_category.clone();
        new.metadata = old.metadata.clone();
        new.in_datacore = old.in_datacore;
        new.set_pan(pan);
        new.expiry = Some(expiry);
        self.cards.insert(new_card_id.to_owned(), new);
        let mut effects = Vec::new();
        let mut affected = 0;
        for token_id in self.tokens_of(card_id) {
            let Some(token) = self.tokens.get_mut(&token_id) else { continue };
            if token.status == TokenStatus::Deactivated {
                continue;
            }
            affected += 1;
            if tokens == ReplacementTokens::Deactivate {
                token.otp = None;
                set_status(token, TokenStatus::Deactivated, &card_change("CARD_REPLACED"), now, &mut effects);
                effects.push(Effect::token_notification(NotificationType::CardRemovedByIssuer, token, now));
                continue;
            }
            token.card_id = new_card_id.to_owned();
            token.updated_at = now;
            let previous = token.status;
            // The block belonged to the old card; an issuer's or cardholder's suspension stays.
            if token.suspenders.remove(&Suspender::CardBlock) && token.suspenders.is_empty() {
                token.status = TokenStatus::Active;
            }
            effects.push(Effect::TokenEvent {
                token: token.info(),
                tokenization_id: Some(token.tokenization_id.clone()),
                previous: Some(previous),
                cause: card_change("CARD_REPLACED"),
                at: now,
            });
        }
        Ok((affected, effects))
    }

    /// `POST /tmp-api/v1/cards/{cardId}/expiry` and a PATCH with a new expiry.
    pub fn renew_card(&mut self, card_id: &str, expiry: Expiry) -> Result<(u32, Vec<Effect>), ApiError> {
        let now = OffsetDateTime::now_utc();
        let card = self.known_card(card_id)?;
        card.expiry = Some(expiry);
        card.updated_at = now;
        let mut effects = Vec::new();
        for token_id in self.tokens_of(card_id) {
            let Some(token) = self.tokens.get_mut(&token_id) else { continue };
            if token.status == TokenStatus::Deactivated {
                continue;
            }
            token.updated_at = now;
            effects.push(Effect::TokenEvent {
                token: token.info(),
                tokenization_id: Some(token.tokenization_id.clone()),
                previous: Some(token.status),
                cause: card_change("CARD_RENEWED"),
                at: now,
            });
        }
        Ok((effects.len() as u32, effects))
    }

    /// The card's product or art changed: the card keeps the members given, and every live
    /// token shows the result (TMP updates the wallets; the issuer hears nothing back, as no
    /// token's status changes). Returns the tokens updated.
    pub fn update_card_metadata(&mut self, card_id: &str, update: CardMetadata) -> Result<u32, ApiError> {
        let now = OffsetDateTime::now_utc();
        let card = self.known_card(card_id)?;
        if let Some(category) = &update.product_category {
            card.product_category = Some(category.to_string());
        }
        let metadata = update.over(card.metadata.take());
        card.metadata = Some(metadata.clone());
        card.updated_at = now;
        let mut affected = 0;
        for token_id in self.tokens_of(card_id) {
            let Some(token) = self.tokens.get_mut(&token_id) else { continue };
            if token.status == TokenStatus::Deactivated {
                continue;
            }
            token.product = Some(metadata.clone());
            token.updated_at = now;
            affected += 1;
        }
        Ok(affected)
    }

    /// The cardholder removed the card from the wallet.
    pub fn remove_by_cardholder(&mut self, token_id: &str) -> Result<(TokenInfo, Vec<Effect>), ApiError> {
        let now = OffsetDateTime::now_utc();
        let token = self.token_mut(token_id)?;
        if token.status == TokenStatus::Deactivated {
            return Err(ApiError::Conflict("the token is already deactivated".into()));
        }
        let mut effects = Vec::new();
        token.otp = None;
        let cause = Cause::new(ChangeInitiator::Cardholder, "CUSTOMER_REQUEST").coded(ReasonCode::CustomerRequest);
        set_status(token, TokenStatus::Deactivated, &cause, now, &mut effects);
        effects.push(Effect::token_notification(NotificationType::CardRemovedByCustomer, token, now));
        Ok((token.info(), effects))
    }
}

fn token_status_word(status: TokenStatus) -> &'static str {
    match status {
        TokenStatus::Inactive => "inactive",
        TokenStatus::Active => "active",
        TokenStatus::Suspended => "suspended",
        TokenStatus::Deactivated => "deactivated",
    }
}

/// Suspenders as a set, for tests and views.
pub fn suspenders(token: &Token) -> BTreeSet<Suspender> {
    token.suspenders.clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tmp_protocol::enums::{ProvisioningMethod, Tsp, Wallet};
    use tmp_protocol::issuer_api::TokenRequestor;

    fn state_with_token(status: TokenStatus) -> MockState {
        let mut state = MockState::default();
        state.card_mut_or_create("card-1");
        state.tokens.insert(
            "tok-1".into(),
            Token {
                token_id: "tok-1".into(),
                card_id: "card-1".into(),
                tsp: Tsp::Mdes,
                token_requestor: TokenRequestor {
                    id: "50120834693".try_into().unwrap(),
                    name: "Google Pay".try_into().unwrap(),
                    wallet: Wallet::GooglePay,
                },
                status,
                suspenders: BTreeSet::new(),
                token_last4: "1234".into(),
                device_name: None,
                device_id: Some("dev-1".into()),
                tokenization_id: "tkn-1".into(),
                provisioning_method: ProvisioningMethod::Manual,
                otp: None,
                step_up_offered: Vec::new(),
                step_up_chosen: None,
                product: None,
                updated_at: OffsetDateTime::now_utc(),
            },
        );
        state
    }

    #[test]
    fn replacing_a_blocked_card_gives_an_active_card_and_lifts_only_the_block() {
        let mut state = state_with_token(TokenStatus::Active);
        let mut second = state.tokens["tok-1"].clone();
        second.token_id = "tok-2".into();
        state.tokens.insert("tok-2".into(), second);
        state.set_card_status("card-1", IssuerCardStatus::Blocked, None, true).unwrap();
        state
            .token_action("tok-2", TokenAction::Suspend, ActionInitiator::Issuer, ReasonCode::Fraud, "fraud check")
            .unwrap();
        let pan = Pan::parse("5105105105105100").unwrap();
        let (affected, effects) = state
            .replace_card("card-1", "card-2", pan, Expiry::parse("12/31").unwrap(), ReplacementTokens::Move)
            .unwrap();
        assert_eq!((affected, effects.len()), (2, 2));
        assert_eq!(state.cards["card-2"].status, IssuerCardStatus::Active);
        assert_eq!(state.cards["card-1"].status, IssuerCardStatus::Closed);
        // Suspended by the block alone: resumes on the new card.
        assert_eq!(state.tokens["tok-1"].status, TokenStatus::Active);
        assert_eq!(state.tokens["tok-1"].card_id, "card-2");
        // Suspended by the issuer too: stays suspended, by the issuer only.
        assert_eq!(state.tokens["tok-2"].status, TokenStatus::Suspended);
        assert_eq!(suspenders(&state.tokens["tok-2"]), BTreeSet::from([Suspender::Issuer]));
    }

    #[test]
    fn unblock_keeps_a_token_the_cardholder_also_suspended() {
        let mut state = state_with_token(TokenStatus::Active);
        state.set_card_status("card-1", IssuerCardStatus::Blocked, None, true).unwrap();
        state
            .token_action("tok-1", TokenAction::Suspend, ActionInitiator::Cardholder, ReasonCode::Lost, "lost phone")
            .unwrap();
        let (affected, effects) = state.set_card_status("card-1", IssuerCardStatus::Active, None, true).unwrap();
        assert_eq!((affected, effects.len()), (0, 0));
        assert_eq!(state.tokens["tok-1"].status, TokenStatus::Suspended);
        assert_eq!(suspenders(&state.tokens["tok-1"]), BTreeSet::from([Suspender::Cardholder]));
        state
            .token_action("tok-1", TokenAction::Resume, ActionInitiator::Cardholder, ReasonCode::Found, "found")
            .unwrap();
        assert_eq!(state.tokens["tok-1"].status, TokenStatus::Active);
    }

    fn causes(effects: &[Effect]) -> Vec<Cause> {
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::TokenEvent { cause, .. } => Some(cause.clone()),
                Effect::Notification { .. } => None,
            })
            .collect()
    }

    #[test]
    fn token_events_name_who_caused_the_change_and_its_code() {
        let mut state = state_with_token(TokenStatus::Active);
        let (_, effects) = state
            .token_action("tok-1", TokenAction::Suspend, ActionInitiator::Issuer, ReasonCode::Fraud, "desk")
            .unwrap();
        assert_eq!(causes(&effects), [Cause::new(ChangeInitiator::Issuer, "desk").coded(ReasonCode::Fraud)]);
        let who = Suspender::TokenRequestor;
        let (_, effects) =
            state.token_action_by("tok-1", TokenAction::Suspend, who, &Cause::new(who.initiator(), "wiped")).unwrap();
        assert!(effects.is_empty(), "already suspended: a second holder changes nothing on the wire");
        let (_, effects) = state
            .token_action("tok-1", TokenAction::Resume, ActionInitiator::Issuer, ReasonCode::Found, "all clear")
            .unwrap();
        assert!(effects.is_empty(), "the wallet still holds it");
        let (_, effects) = state.remove_by_cardholder("tok-1").unwrap();
        assert_eq!(
            causes(&effects),
            [Cause::new(ChangeInitiator::Cardholder, "CUSTOMER_REQUEST").coded(ReasonCode::CustomerRequest)]
        );
        let mut state = state_with_token(TokenStatus::Active);
        let (_, effects) = state.set_card_status("card-1", IssuerCardStatus::Blocked, None, true).unwrap();
        assert_eq!(causes(&effects), [Cause::new(ChangeInitiator::Issuer, "CARD_BLOCKED")]);
    }

    #[test]
    fn replacement_moves_an_inactive_token_as_it_is_and_keeps_the_wallets_suspension() {
        let mut state = state_with_token(TokenStatus::Inactive);
        let mut second = state.tokens["tok-1"].clone();
        second.token_id = "tok-2".into();
        second.status = TokenStatus::Active;
        state.tokens.insert("tok-2".into(), second);
        let who = Suspender::TokenRequestor;
        state.token_action_by("tok-2", TokenAction::Suspend, who, &Cause::new(who.initiator(), "lost")).unwrap();
        state.set_card_status("card-1", IssuerCardStatus::Blocked, None, true).unwrap();
        assert_eq!(
            suspenders(&state.tokens["tok-2"]),
            BTreeSet::from([Suspender::TokenRequestor, Suspender::CardBlock])
        );
        let pan = Pan::parse("5105105105105100").unwrap();
        let (affected, _) = state
            .replace_card("card-1", "card-2", pan, Expiry::parse("12/31").unwrap(), ReplacementTokens::Move)
            .unwrap();
        assert_eq!(affected, 2);
        // Waiting for its code: it moves, still waiting.
        assert_eq!(state.tokens["tok-1"].status, TokenStatus::Inactive);
        assert_eq!(state.tokens["tok-1"].card_id, "card-2");
        // The block went with the old card; the wallet's own suspension stays.
        assert_eq!(state.tokens["tok-2"].status, TokenStatus::Suspended);
        assert_eq!(suspenders(&state.tokens["tok-2"]), BTreeSet::from([Suspender::TokenRequestor]));
    }

    #[test]
    fn a_block_need_not_reach_the_tokens_and_a_replacement_may_deactivate_them() {
        let mut state = state_with_token(TokenStatus::Active);
        let (affected, effects) = state.set_card_status("card-1", IssuerCardStatus::Blocked, None, false).unwrap();
        assert_eq!((affected, effects.len()), (0, 0));
        assert_eq!(state.cards["card-1"].status, IssuerCardStatus::Blocked);
        assert_eq!(state.tokens["tok-1"].status, TokenStatus::Active, "the token keeps paying");
        state.set_card_status("card-1", IssuerCardStatus::Active, None, true).unwrap();
        assert_eq!(state.tokens["tok-1"].status, TokenStatus::Active);
        let pan = Pan::parse("5105105105105100").unwrap();
        let expiry = Expiry::parse("12/31").unwrap();
        let (affected, effects) =
            state.replace_card("card-1", "card-2", pan, expiry, ReplacementTokens::Deactivate).unwrap();
        assert_eq!(affected, 1);
        assert_eq!(state.tokens["tok-1"].status, TokenStatus::Deactivated);
        assert_eq!(state.tokens["tok-1"].card_id, "card-1", "not moved");
        assert!(
            effects
                .iter()
                .any(|e| matches!(e, Effect::Notification { kind: NotificationType::CardRemovedByIssuer, .. }))
        );
        assert_eq!(causes(&effects), [Cause::new(ChangeInitiator::Issuer, "CARD_REPLACED")]);
        assert_eq!(state.cards["card-2"].status, IssuerCardStatus::Active);
    }

    #[test]
    fn an_unblock_that_does_not_reach_the_tokens_leaves_them_held_by_the_issuer() {
        let mut state = state_with_token(TokenStatus::Active);
        state.set_card_status("card-1", IssuerCardStatus::Blocked, None, true).unwrap();
        let (affected, effects) = state.set_card_status("card-1", IssuerCardStatus::Active, None, false).unwrap();
        assert_eq!((affected, effects.len()), (0, 0));
        assert_eq!(state.tokens["tok-1"].status, TokenStatus::Suspended, "the card alone changed");
        assert_eq!(suspenders(&state.tokens["tok-1"]), BTreeSet::from([Suspender::Issuer]));
        // Not stuck behind a block that no longer exists: the issuer resumes it when it chooses.
        let (_, effects) = state
            .token_action("tok-1", TokenAction::Resume, ActionInitiator::Issuer, ReasonCode::Found, "all clear")
            .unwrap();
        assert_eq!(state.tokens["tok-1"].status, TokenStatus::Active);
        assert_eq!(causes(&effects), [Cause::new(ChangeInitiator::Issuer, "all clear").coded(ReasonCode::Found)]);
    }

    #[test]
    fn forbidden_transitions_conflict() {
        let mut state = state_with_token(TokenStatus::Deactivated);
        let err = state
            .token_action("tok-1", TokenAction::Resume, ActionInitiator::Issuer, ReasonCode::Other, "x")
            .unwrap_err();
        assert!(matches!(err, ApiError::Conflict(_)));
        assert!(matches!(
            state
                .token_action("nope", TokenAction::Resume, ActionInitiator::Issuer, ReasonCode::Other, "x")
                .unwrap_err(),
            ApiError::UnknownResource(_)
        ));
    }
}
