-- A claimed bulk item always carries its claim: the token that renewing and finishing match, and the
-- expiry after which another worker may claim it again. claimItems sets both; renewItem only moves the
-- expiry of a claimed item; finishItem makes it `done`. Without a token nobody could ever finish the item,
-- and without an expiry nobody could ever take it over: the run would never end.
--
-- Items claimed before 0003 (no token) get one now, and an expiry if they lack it: the next claim treats
-- them as lapsed and takes them over, as it would have for a dead worker's.
update bulk_run_items
set claim_token = coalesce(claim_token, gen_random_uuid()),
    claim_expires_at = coalesce(claim_expires_at, now())
where status = 'claimed' and (claim_token is null or claim_expires_at is null);

alter table bulk_run_items add constraint bulk_run_items_claimed_has_claim
  check (status <> 'claimed' or (claim_token is not null and claim_expires_at is not null));
