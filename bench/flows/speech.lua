-- The flow of `ivrbench -speech` (bench/cmd/ivrbench, the realistic speech
-- run): the shipped main menu asked again and again, with a long prompt
-- the caller may interrupt, so that every utterance of the bench's callers
-- answers a question. What the line understood is in each call's events
-- (`speech.result tag ...`), which ivrbench scores against what was said.
--
-- ivrbench puts flows/main.lua's `local MENU = {...}` (the options and
-- their synonyms) in place of the marker below when it writes this flow
-- as main.lua, so the callers answer the menu the line ships.
--[[MENU]]

local PROMPT = {
  ro = "Spuneți pe scurt cu ce vă putem ajuta: cartea de identitate, pașaportul, contul de pe portal, " ..
       "o cerere online sau stadiul unei solicitări. Puteți vorbi oricând, nu trebuie să așteptați sfârșitul acestui mesaj.",
}

while true do
  ask{ prompt = PROMPT, options = MENU, retries = 0, timeout = 30, barge_in = true,
       confirm_below = 0, operator = false, no_match = "", no_input = "" }
end
