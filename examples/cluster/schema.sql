-- The registry's tables, as `plexer serve` creates them when missing (under an advisory lock,
-- so nodes starting together create them once). Run this as a DBA when plexer's database user
-- may not create tables; plexer then needs only SELECT, INSERT, UPDATE, DELETE on both tables
-- and USAGE on the sequence. Needs PostgreSQL 14 or later (CREATE OR REPLACE TRIGGER).

CREATE SEQUENCE IF NOT EXISTS plexer_accounts_version;

-- `spec` is exactly what an account file holds; `version` only grows, stamped by the trigger
-- below on every insert and update (also by SQL), so a node tells a changed row from one it
-- applied, and the highest version with the row count tells it whether it missed a change.
CREATE TABLE IF NOT EXISTS plexer_accounts (
    name text PRIMARY KEY,
    spec text NOT NULL,
    version bigint NOT NULL DEFAULT nextval('plexer_accounts_version'),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS plexer_accounts_version_idx ON plexer_accounts (version);

CREATE OR REPLACE FUNCTION plexer_accounts_stamp() RETURNS trigger LANGUAGE plpgsql AS $plexer$
BEGIN
    NEW.version := nextval('plexer_accounts_version');
    NEW.updated_at := now();
    RETURN NEW;
END $plexer$;

-- Every change names its account on the channel plexer_accounts (the payload stays far under
-- NOTIFY's 8000 bytes); a rename names both.
CREATE OR REPLACE FUNCTION plexer_accounts_notify() RETURNS trigger LANGUAGE plpgsql AS $plexer$
BEGIN
    IF TG_OP <> 'INSERT' THEN PERFORM pg_notify('plexer_accounts', OLD.name); END IF;
    IF TG_OP <> 'DELETE' THEN PERFORM pg_notify('plexer_accounts', NEW.name); END IF;
    RETURN NULL;
END $plexer$;

CREATE OR REPLACE TRIGGER plexer_accounts_stamp BEFORE INSERT OR UPDATE ON plexer_accounts
    FOR EACH ROW EXECUTE FUNCTION plexer_accounts_stamp();
CREATE OR REPLACE TRIGGER plexer_accounts_notify AFTER INSERT OR UPDATE OR DELETE ON plexer_accounts
    FOR EACH ROW EXECUTE FUNCTION plexer_accounts_notify();

-- One row per node, its heartbeat in `seen` (every 2 s); `plexer status --cluster` reads it.
CREATE TABLE IF NOT EXISTS plexer_nodes (
    name text PRIMARY KEY,
    listen text,
    status text,
    seen timestamptz
);
