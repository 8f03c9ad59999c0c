-- main.lua: the line's default flow. Romanian first, English on request
-- ("English" or key 9 at the menu). A short menu that also accepts free
-- speech; answers from the knowledge base; the status of an earlier
-- request by its number; an operator at any point ("operator" or 0).
-- The API is described in docs/flows.md.

local MENU = {
  { id = "identity_card", key = "1", say = { ro = "cartea de identitate", en = "the identity card" },
    synonyms = { "buletin", "buletinul", "carte de identitate", "cartea electronica", "CEI", "act de identitate",
                 "identity card", "ID card", "ID" } },
  { id = "passport", key = "2", say = { ro = "pașaport", en = "passport" },
    synonyms = { "pasaport", "pasaportul", "passport" } },
  { id = "portal_account", key = "3", say = { ro = "contul de pe portal", en = "your portal account" },
    synonyms = { "cont", "contul", "portal", "parola", "parolă", "account", "password", "login" } },
  { id = "online_request", key = "4", say = { ro = "o cerere online", en = "an online request" },
    synonyms = { "cerere online", "cerere", "depun o cerere", "online request", "application", "submit" } },
  { id = "request_status", key = "5", say = { ro = "stadiul unei solicitări", en = "the status of a request" },
    synonyms = { "stadiul", "stadiu", "status", "solicitare", "numar de inregistrare", "tichet", "ticket", "where is my request" } },
  { id = "english", key = "9", say = { ro = "English", en = "Romanian" },
    synonyms = { "english", "engleza", "in engleza", "romana", "romanian", "limba romana" } },
}

-- Sub-menus: an open question; the keys are listed at once to a caller
-- who chose the topic by key, and to the others after a miss. Each choice
-- names the article that answers it and a query that finds it.
local TOPICS = {
  identity_card = {
    prompt = { ro = "Ce doriți să aflați despre cartea de identitate?", en = "What would you like to know about the identity card?" },
    keys = { ro = "Cum o obțineți, apăsați 1; documentele necesare, 2; programarea, 3; dacă ați pierdut-o sau v-a fost furată, 4.", -- lint: long
             en = "How to get it, press 1; the documents needed, 2; the appointment, 3; if it was lost or stolen, 4." }, -- lint: long
    options = {
      { id = "cei-obtain", key = "1", say = { ro = "obținere", en = "getting one" }, synonyms = { "obtin", "obtinere", "eliberare", "get", "obtain", "new" },
        query = { ro = "cum obțin cartea electronică de identitate", en = "how to get the identity card" } },
      { id = "cei-documents", key = "2", say = { ro = "documente", en = "documents" }, synonyms = { "documente", "acte", "acte necesare", "documents", "papers" },
        query = { ro = "documente necesare carte de identitate", en = "documents needed identity card" } },
      { id = "cei-appointment", key = "3", say = { ro = "programare", en = "appointment" }, synonyms = { "programare", "programez", "appointment", "book" },
        query = { ro = "programare carte de identitate", en = "appointment identity card" } },
      { id = "cei-lost-stolen", key = "4", say = { ro = "pierdută sau furată", en = "lost or stolen" }, synonyms = { "pierdut", "pierduta", "furat", "furata", "lost", "stolen" },
        query = { ro = "am pierdut cartea de identitate furată", en = "lost or stolen identity card" } },
    },
  },
  portal_account = {
    prompt = { ro = "Ce doriți să aflați despre contul de pe portal?", en = "What would you like to know about your portal account?" },
    keys = { ro = "Crearea unui cont, apăsați 1; parola uitată, 2; validarea contului, 3.",
             en = "Creating an account, press 1; a forgotten password, 2; validating the account, 3." },
    options = {
      { id = "portal-create-account", key = "1", say = { ro = "cont nou", en = "new account" }, synonyms = { "creez", "creare", "cont nou", "inregistrare", "create", "new account", "register" },
        query = { ro = "creare cont nou portal", en = "create new account portal" } },
      { id = "portal-password-reset", key = "2", say = { ro = "parola uitată", en = "forgotten password" }, synonyms = { "parola", "am uitat parola", "resetare", "password", "forgot", "reset" },
        query = { ro = "am uitat parola contului", en = "forgot password reset" } },
      { id = "portal-account-validation", key = "3", say = { ro = "validarea contului", en = "account validation" }, synonyms = { "validare", "validez", "validat", "validate", "validation", "verify" },
        query = { ro = "validarea contului de pe portal", en = "validate portal account" } },
    },
  },
  passport = { query = { ro = "cum obțin pașaportul", en = "how to get a passport" }, article = "passport-obtain" },
  online_request = { query = { ro = "cum depun o cerere online", en = "submit a request online" }, article = "online-request-submit" },
}

-- The caller wants a person: a ticket with everything gathered, then the
-- level I queue, or, outside working hours, a request left for a call back.
function on_operator()
  if hours.open() then
    operator("Apelantul a cerut un operator.")
  end
  local when = hours.describe()
  if when ~= "" then when = when .. ". " end
  -- In the portal's chat the citizen writes, and may have left no phone
  -- number: the request is taken up, not called back.
  local chat = call.channel == "chat"
  local prompt = { ro = "Operatorii nu sunt disponibili acum. " .. when .. "Spuneți pe scurt solicitarea dumneavoastră, iar un operator vă va suna înapoi.",
                   en = "Our operators are not available right now. " .. when .. "Please tell us briefly what you need, and an operator will call you back." }
  if chat then
    prompt = { ro = "Operatorii nu sunt disponibili acum. " .. when .. "Scrieți pe scurt solicitarea dumneavoastră, iar un operator o va prelua.",
               en = "Our operators are not available right now. " .. when .. "Please write briefly what you need, and an operator will take it up." }
  end
  local r = ask_free(prompt, { operator = false, retries = 1 })
  if r and r.untranscribed then
    vars.request = "(spusă cu voce, netranscrisă: ascultați înregistrarea apelului)"
  elseif r then
    vars.request = r.text
  end
  local number = ticket.open{ service = vars.service or "other", priority = "normal",
                              description = "Solicitare lăsată în afara programului: " .. (vars.request or "(nu a spus nimic)") }
  if number then
    local after = { ro = ". Vă vom suna înapoi în programul de lucru. La revedere!", en = ". We will call you back during working hours. Goodbye!" }
    if chat then
      after = { ro = ". Un operator o va prelua în programul de lucru. La revedere!",
                en = ". An operator will take it up during working hours. Goodbye!" }
    end
    say{ tr{ ro = "Am înregistrat solicitarea cu numărul", en = "We registered your request with the number" }, { digits = number }, tr(after) }
  else
    say{ ro = "Ne pare rău, nu am putut înregistra solicitarea. Vă rugăm să reveniți în programul de lucru.", en = "Sorry, we could not register your request. Please call again during working hours." }
  end
  hangup("request left outside hours")
end

-- answer finds an article (preferring the one with the given id) and says it.
-- It returns true when something was said.
local function answer(query, article)
  local hits = kb.search(query, { limit = 3 })
  local pick = nil
  for _, h in ipairs(hits) do
    if h.id == article then pick = h end
  end
  pick = pick or hits[1]
  if not pick then return false end
  vars.articles = (vars.articles and (vars.articles .. ",") or "") .. pick.id
  say(pick.spoken)
  return true
end

-- after an answer: did it help? "no" leads to an operator.
local function helped()
  local ok = ask_yes_no{ ro = "V-a ajutat acest răspuns?", en = "Did this answer help you?" }
  if ok == false or ok == nil then
    on_operator()
  end
  local more = ask_yes_no{ ro = "Mă bucur. Vă mai putem ajuta cu altceva?", en = "Glad to hear it. Can we help you with anything else?" }
  if not more then
    if call.channel == "chat" then
      say{ ro = "Vă mulțumim! La revedere!", en = "Thank you! Goodbye!" }
    else
      say{ ro = "Vă mulțumim pentru apel. La revedere!", en = "Thank you for calling. Goodbye!" }
    end
    hangup("resolved")
  end
end

-- free speech: search the knowledge base; confirm a doubtful match.
local function free_question(text)
  vars.question = text
  local hits = kb.search(text, { limit = 3 })
  local top = hits[1]
  if top and not top.confident and top.score < 0.3 then
    top = nil -- under the hand-off score: not worth offering (docs/knowledge-base.md)
  elseif top and not top.confident then
    local yes = ask_yes_no{ ro = "Întrebați despre: " .. top.title .. "?", en = "Are you asking about: " .. top.title .. "?" }
    if not yes then top = nil end
  end
  if not top then
    say{ ro = "Nu am găsit un răspuns la această întrebare.", en = "I could not find an answer to that question." }
    on_operator()
  end
  vars.service = top.service
  vars.articles = top.id
  say(top.spoken)
  helped()
end

local function topic_menu(id, by_keys)
  local t = TOPICS[id]
  if t.article then
    if not answer(tr(t.query), t.article) then
      say{ ro = "Nu am găsit informațiile cerute.", en = "I could not find that information." }
      on_operator()
    end
    return helped()
  end
  local prompt = t.prompt
  if by_keys then prompt = { tr(t.prompt), tr(t.keys) } end
  local r = ask{ prompt = prompt, options = t.options, free = true, retries = 1,
                 no_input = { tr{ ro = "Nu v-am auzit.", en = "Sorry, I did not hear you." }, tr(t.keys) },
                 no_match = { tr{ ro = "Nu am înțeles.", en = "Sorry, I did not understand." }, tr(t.keys) } }
  if not r then return on_operator() end
  if not r.option then return free_question(r.text) end
  for _, o in ipairs(t.options) do
    if o.id == r.option then answer(tr(o.query), o.id) end
  end
  helped()
end

-- the status of an earlier request: the number digit by digit, confirmed back.
local function request_status()
  for attempt = 1, 2 do
    local prompt = { ro = "Spuneți sau tastați numărul solicitării, cifră cu cifră, apoi tasta diez.",
                     en = "Say or key in the request number, digit by digit, then the hash key." }
    if call.channel == "chat" then
      prompt = { ro = "Scrieți numărul solicitării.", en = "Please write the request number." }
    end
    local n = ask_digits{ prompt = prompt, min = 4, max = 12, confirm = true }
    if not n then break end
    if not ticket.valid(n) then
      say{ ro = "Acest număr nu este valid.", en = "This number is not valid." }
    else
      local st, err = ticket.lookup(n)
      if st then
        vars.ticket = n
        say{ tr{ ro = "Solicitarea", en = "Request" }, { digits = n }, tr{ ro = "este " .. st.status_text .. ".", en = "is " .. st.status_text .. "." } }
        return helped()
      end
      say{ tr{ ro = "Nu am găsit solicitarea cu numărul", en = "I could not find a request with the number" }, { digits = n } }
    end
  end
  on_operator()
end

-- A sentence that names a topic ("mi-am pierdut buletinul") may already
-- be a question the knowledge base answers with confidence: answer it
-- without the sub-menu.
function direct_answer(r)
  local words = 0
  for _ in string.gmatch(r.text, "%S+") do words = words + 1 end
  if words < 3 then return false end
  local said = normalize(r.text)
  for _, o in ipairs(MENU) do -- only the topic's name: the sub-menu asks what about it
    if o.id == r.option then
      for _, s in ipairs(o.synonyms) do
        if normalize(s) == said then return false end
      end
      if normalize(tr(o.say)) == said then return false end
    end
  end
  local hits = kb.search(r.text, { limit = 1 })
  local top = hits[1]
  if not top or not top.confident or top.service ~= r.option then return false end
  vars.question = r.text
  vars.service = top.service
  vars.articles = top.id
  say(top.spoken)
  return true
end

-- The call. The line listens early: a short welcome, then the open
-- question; the options (and the other language's hint) only after a miss
-- or a silence. A caller may answer at any moment, keys or speech: what
-- they say during the welcome answers the question.
local QUESTION = { ro = "Spuneți pe scurt cu ce vă putem ajuta.", en = "Please tell us briefly how we can help." }
if call.channel == "chat" then -- the portal's chat: written words, the options are buttons
  QUESTION = { ro = "Scrieți pe scurt cu ce vă putem ajuta, sau alegeți un subiect.", en = "Please write briefly how we can help, or choose a topic." }
end

-- choices lists the menu for a caller who did not answer the open
-- question (said after a miss or a silence, then the question again), the
-- other language's hint first.
local function choices(sorry)
  if call.channel == "chat" then
    return { tr(sorry), tr{ ro = "Alegeți un subiect sau scrieți întrebarea altfel.", en = "Choose a topic, or put your question another way." } }
  end
  if call.lang == "ro" then
    return { tr(sorry), { lang = "en", text = "For English, press 9, or say English." },
             "Puteți alege: cartea de identitate, apăsați 1; pașaportul, 2; contul de pe portal, 3; o cerere online, 4; stadiul unei solicitări, 5; un operator, 0." } -- lint: long
  end
  return { tr(sorry), { lang = "ro", text = "Pentru limba română, apăsați 9." },
           "You can choose: the identity card, press 1; passport, 2; your portal account, 3; an online request, 4; the status of a request, 5; an operator, 0." } -- lint: long
end

say{ ro = "Bună ziua!", en = "Hello!" }
while true do
  local r = ask{
    prompt = QUESTION, options = MENU, free = true, retries = 1,
    no_input = choices{ ro = "Nu v-am auzit.", en = "Sorry, I did not hear you." },
    no_match = choices{ ro = "Nu am înțeles.", en = "Sorry, I did not understand." },
  }
  if not r then
    on_operator()
  elseif r.option == "english" then
    if call.lang == "ro" then set_language("en") else set_language("ro") end
  elseif not r.option then
    free_question(r.text)
  elseif r.how == "speech" and r.option ~= "request_status" and direct_answer(r) then
    helped()
  else
    vars.service = r.option
    if r.option == "request_status" then
      request_status()
    else
      topic_menu(r.option, r.how == "dtmf")
    end
  end
end
