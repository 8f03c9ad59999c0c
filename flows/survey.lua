-- survey.lua: the satisfaction survey. The engine runs it after a call
-- with an agent of the embedded queue, when the caller is still on the
-- line (the agent hung up first), with the call's ticket in call.ticket;
-- in the web chat, when the agent resolves the request while the citizen
-- is still in the conversation (the keys are buttons there).
-- One question, answered with one key from 1 to 5 and stored with the
-- ticket; anything else (silence, speech, another key) leaves no rating.
-- Delete this file to turn the survey off. Its sentences are in the
-- catalog (flows/catalog/*.toml, [survey]); the API is in docs/flows.md.

if not call.ticket then
  hangup("no ticket")
end

local RATINGS = {}
for k = 1, 5 do
  RATINGS[k] = { id = tostring(k), key = tostring(k) }
end

-- A survey call (the line called the citizen after their request was
-- resolved, call.survey_call) says why it calls and asks about the
-- request; after an agent's call the question is about the conversation.
local question = text("survey.question")
if call.survey_call then
  say(text("survey.call_intro"))
  say_digits(call.ticket)
  say(text("survey.call_resolved"))
  question = text("survey.call_question")
end

local r = ask{
  prompt = question,
  options = RATINGS,
  speech = false,   -- a key only: a word heard in the room must not rate an agent
  retries = 0,      -- asked once
  timeout = 8,
  operator = false, -- the caller has just talked to one
}
if not r then
  hangup("no rating")
end

local ok, err = ticket.rate(call.ticket, tonumber(r.option))
if not ok then
  log.warn("rating not stored", { ticket = call.ticket, err = err })
  hangup("rating not stored")
end
say(text("survey.thanks"))
hangup("rating " .. r.option)
