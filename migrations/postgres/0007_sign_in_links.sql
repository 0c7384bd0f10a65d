-- Single-use links (invitations, magic links, password resets) and sessions are looked up
-- by member too: setting a password ends every session of the member and voids their other
-- links, and erasing a member cascades to both.
create index invitations_member_idx on invitations (app_id, member_id);
create index member_sessions_member_idx on member_sessions (app_id, member_id);
