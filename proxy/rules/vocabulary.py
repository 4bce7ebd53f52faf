"""Words the de-obfuscated view prefers when an evasion leaves a letter ambiguous.

"1" and "|" read "i" or "l", look-alikes of capital I read "l", and in leetspeak a run of digits
may stand for a short word ("70" -> "to"). Everyday English words written by the team, plus the
literal words of the shipped rule patterns, so a disguised key word resolves to the spelling the
rules look for. Changing this list changes the normalised text: retrain the learned layer.
"""

_WORDS = """
a aanwijzingen abaikan abandon abide able about above absolutely acceptable acces access account
accounts acima acrostic act acting action actions activando activat activated active activez
activities activo acts actual actually acuhkan adalah add address adecimal adesso adhere admin
administrator admit adres adresse advise affiche affirmez afirma after again against age agent
agents agora agree ahora aim aktiviere alamat alarms alcun alcuna alert alignment all alle alles
allowed alma along alphabreak already also alter alternate alternative although always am amoral
amount an anagram analy anarchy and anda andaikan anfrage ang angenommen ano anordnungen another
answer answering answers anterieures anterior anteriores anthropic anti antigpt antithesis antivirus
antwort anweisung anweisungen any anyone anything apa api apologi apophis appearing appears append
applicable applied apply approve arahan arch are aren arguments around arriba article artik as ascii
aside asistente ask asked asks assessing assigned assignment assistant assistants assistent
assistente assume at atbash ate ation ativando ativo attach attention attivo attn aturan aucun
aucune audit aufgaben auftrage auth authori automated available avant avec away aws back backups
backwards bad bagikan bagis balance balewalain ban bank bard baru bas base based batasan bayangkan
bcc be because become been befehle before begin beginning behaupt behave being below benchmarking
bend bending benutzer benutzers berikan beschrankungen bestatigen betrete betreten better betterdan
between beyond big bin binar binary birth birthday bisherigen bist bitcoin bitte block book bot both
bots bottom bound boundaries boundless bovenstaande break breaking broken browsing btc bucks built
bundan bunu but by bypass bypassed caesar call called calling calls came cameras can cancel cancell
cannot capability capital caps card care carry categori cautions cebzcg cela censored censoring
censorship censura censure cerivbhf certainly cesar cesare cet cette chains change chaos character
characters chat chatbot chatbots chatgpt che checking checks chi chia chiffre cho chua cidade cifra
cifrado cipher circumvent citta city ciudad claim classic classification classified classify claude
clave clear clearance click close clue clues cnffjbeq code codes codigo collect combine combining
come comes coming command commands comment common compartilhar compartir complete completed
completely completing completion comply concatenate concerns conclude conclusion condividere
confermare confidant confidential configuration confines confirm confirmar confirmer consider
considerations consignes constrained constraints contacts contain containing contains content
contents context continue contrasena control controversial conv conversation conversations convert
convince copia copilot copy correct correo could count courriel course coz crawlers crawling creador
create created createur creator creatore creators credentials credit criador critical ctx cua cual
currency current customer cvv dadas dados dame dammi dan dangerous danos dans darei dark darkgpt das
dashes dat data dataset date daten dati datos day days deactivate deactivated dead dear debug
deceased dechiffr decifr decipher decir declara declare declarez declin decod decode decrypt
deepmind default definition defy dein deine deinen dekodier del delete deleted deletion dell demande
deme demon demonstration den deny departed der des desarrollador descart descifr descodific describe
describes desenvolvedor designed designer desormais dessus destroyed details deus dev developer
developers developpeur devil devoid dia diagnostic dialogue dice dichiara did didn die diese dieu
difference different differently diga digame digit dikkate dime dimension dimentic dimentica dimmi
dios dir direccion direct directions directive directives directrices diretrizes direttive dis
disable disabled disclaimers disclose dismiss disobey display disregard disregarding disregards
distinct dites do doarei document does doesn dogum doing dolar dolares dollari dollars domanda don
donar donat donate done donne donnees donner donnerai donnez dono doo door dots down download
dragersid drop drowssap dual dude dump dung during each eak earlier echo ecrivez edelim edin eerdere
effect eger ego egos einschrankungen elicitation else email emails embed emergency emojis employ
employee emulate enabl enabled encima encod encode encoded encrypt end endereco endoftext endpoint
engag engaged engineer ensure enter entering entication entire entities entity entrando entre
entrelac entrelaz entro entrons entschlussel entwickler enumerate eot erase eres erklar erongi ers
esadecimal escaped escreva escribe eso esque esquec esquece esta este etes eth ethical ethics ethik
ethique etica etika etkinlestir eur euros evad evaluating evaluation even events ever every everyone
everything evil evilgpt exact exactly execute execution exercise exfil exfiltrate exist existing
explicit export expose extract eyes factor fake false far farazi farz father favor favore features
fecha feff fetch fiction fictional file files fill filter filtered filtering filters filtres filtri
filtros fim final find fine finish finished fire firewall first five flag flfgrz flush follow
followed following follows for forbidden force foregoing forest forget forgets forgetting forgot
forgotten format former formula forward found four frage fragments free freed freedom freely from
frperg fruheren fulfil fulfill full fully function functions funds future game gave gbp geben geburt
geburtsdatum geheimcode geheime geheimwort gel gelistiricin gelistiriciniz gemini generate get gets
gia giai gib gibst gio giriyorum give given gives go goal goals god goes going gone good google gop
gormezden got gott gpt graders grading grand granny grant granted guardrails guid guidance guideline
guidelines gumagamit had haiku half handle handling happy harfleri harmful has hateful have having
hay hayal he head header hello help helps henceforth her here hers hersey het hex hexadecimal hey
hidden high him hint hints his hist history hoat home how however https human humans huong huwag
hyperlink hyphens hypothetical hypothetically i iamo ibahagi iban ich if ifi ific ignor ignora
ignorare ignore ignored ignores ignorier ignoring ignoruj igorez ihr ihre ihren illegal image imagin
imaginary imagine img immagina immediately immerse immoral impersonate important imposed imprime
imprimez in inappropriate incapable include includes including incorrect indexing indica
indicaciones indications indicazioni indique indiquez indirizzo info inform information informations
informing ing inhumane iniciais iniciales inisial initial initialen initiales initiali initials
initiat iniziali input inputs insert insist inst install instead instrucciones instrucoes instruct
instructed instructies instruction instructions instrukcje instruksi instruksyon instruktionen
insult interlac interlacci internal interpret into invalid invite invoke ipagpalagay ipython
irgendwelche irrelevant irrespective is isipin isn isso ist istruzioni it item its itu iyan iyong
jailbr jailbreak jailbroken jegliche jetzt jika job join joke json just kalimutan kamu kapanganakan
kata katakan keep kennwort kept kevin key keys khau kich kisisel knew know knowledge known knows
komutlar konfirmasi kullanici kumpirmahin kung label lahir language large las last late latin lautet
lawless laws leak lectures lecturing leetspeak left legal lei lenh les let lets letter letters level
liberated lieu life lifted like limerick limit limitations limited limites limiti limitless limits
line lines link links list listen literal live lives living llama llm llms located location locks
log logging login long longer look looks los low lumikha lupakan made magbibigay magdo magic mail
mails maintenance maintenant make maker makes malicious mandatory many mark markdown master mat
material matter maximum may mcp me measures meister memasuki memecahkan memo memorandum memory
mengaktifkan mengurai mention mentions menyumbang merge message messages meta metsys mga microsoft
might mind mine mir misalkan misleading missacht mission mistral mod moda mode model modele modell
modelo models moderation modes modify modo modus moi moment money mongo monitoring moral moralis
morality moraliz morals more morse mos most mostra mostre mot mother move msg much muestra mulai
multiple must mustn my myself nacimiento naissance nakatira name named nana nascimento nascita
naunang need needs nefarious negeer neglect neglige nemesis nenhum nenhuma nenn nennen neu neue
never new next ngay nguoi nha nhan nieuwe ningun ninguna nmrs no nobody none nor normal not note
notes nothing notice notify notifying notwithstanding nous nouvelles novas now nsfw nuevas number
numbers nun nuove nutzers nya oben obey obfuscate obigen objective obligations obsolete of off
offensive official ohne okay oken old olvid olvida omega omit on onayla once onceki one ones only
ons onto open openai opening operate operating operator opposing opposite or ora ordenes order
orders ordinary ordine orientacoes original originales other otherwise oubli oublie our ours out
outdated output over overlook overrid overridden override overriding overwrite own owner page
palavra pansinin papasok paper paragraph paragraphs parallel parameters params paraphrase parola
parsing part partager partes parti parties partir parts pass passage passcode passe passing
passphrase passport password passwords passwort paste pay paylas payload pedido pencipta penciptamu
pengembang pengembangmu pengguna people per perform performed pergunta perintah permanent
permissions permitted person persona personal personales personali personalities personas
personenbezogene personliche personnel personnelles persuade pessoais peticion petsa petunjuk phat
phishing phone phot phrase pieces pig pin pirate pixel placed plait play plays please plugin poem
poi point polecenia polic policies policy poprzednie por pose post praise pre preach preamble
precedent precedente precedentes precedenti preceding preface prefix pregunta prepend pretend
previas previous previously pribadi primary principles print prints prior priority privacy private
privileged proceed processing produce profanity program programmed programmer programming prompt
prompts protocol protocols provide provided public publish pumapasok punished purge purposes put pwd
pwned qua qual que quel quelle quello quen queries query question questions quote quyen qvfertneq
rank ranking rap rate rather read reader readers reading reads real reality really realm received
recipe recipient recite reckless recommend recopie records recovery red refus refusals refuse regard
regardless regeln regels reglas regles regole regras regular rejects released relevant remain
remember remind reminder remorse remove removed render repeat repete repetez repetir rephrase repita
repite replace replaced replies reply repondez reponds report repositor reproduce request requests
requete required research researcher reserve reset reside residence residencia residenza resides
respect respond responda responde responding response responses rest restraints restricciones
restricoes restricted restriction restrictions restrizioni result results resume retrieve return
reveal revealing reveals revelame revelar revele reveler revelez reverse reversed review reviewers
reviewing reviews revised revoked reward rhyme rhymes richiesta riddle right rights ripeti rispondi
rivelami rivelare rogue role roleplay root rot rsa rude rule rules run running sabihin safe
safeguards safety sag sagen said saja sake same sandi sans sarcastic savings saw say saying says
scanners scenario scene schedule schopfer schreib science scoring scramble scraping scratch
screeners screening script scrivi second secret secreta secreto secrets security see seed seen
seguenti seguintes sei sekarang self sem semua sen send sends senha sensor sent sentence senza sep
separate seras serials session set setting seu several seyi sezar shackles shall share shared she
short should shouldn shouts show shows shut sich side sidestep sie sifre sifren signed siguientes
simply simulate simulating simulation sin since sind sinh sistema site skill skip small snoitcurtsni
so social society sofort solicitud solve some someone something song sonra sopra sou soy spaces
speak speaking spell spelled spells spende spread src ssh ssn staff stampa stan standard standards
start starting state stated stay staying stell stellen step steps still sto stop story strings
stripped struct style sua suas subject submit such sudo suffix suggest suis suivantes sum summari
summary suo suoiverp super superseded supervisor suponga supongamos suponha supponiamo suppose
supposing supposons sure sus sviluppatore switch switched synonym sys system systeme systems table
tagalikha tagubilin take taken tale talimatlar talk tanggal tanpa tao tarihi task tasks tat team
teilen tell telling tells terminated termination tes test testing teu text than thank thanks that
the their theirs them then there therefore these they thi thing things think third this those though
thought three through throughout throw time timeline times tinggal tip tirahan to todas todo todos
together toi token told tom ton too took tool tools top total totally tous tout toutes toxic tpmorp
trained trainer training transactions transcend transcript transfer transform translate translating
translation trascura treat triaging trien trigger true tua tuas tudo tue tum tuo tuong turn turned
tus tutte tutto twin two txt type typed typical ucar unable unbound unbounded uncensored unchained
und under unethical unfiltered unhinged unicode universe unless unlimited unlock unlocked unplugged
unrestricted uns unsafe unscramble until unut up update updated upload urge urgent url us usage
usando usd use used user users uses using usted usual usuario utente utili utilisant utilisateur
utilizando utos vafgehpgvbaf valid vao variables verbatim verdict vergeet vergessen vergiss veri
verification verify verrat verraten verschr version versions very villain ville violat virtual visit
vit vive voce void voorgaande vor vorangegangenen vorangehenden vorgaben vorherigen vorige vorigen
vorstehenden vos vostre votre vous vtaber vtabevat wachtwoord want wants wards warn warnings was way
ways wczesniejsze we web webpage website wechsle welcome wenn went were what whatever when where
whereabouts which while whispers who whole whom whose why wie wiederhole wiederholen will window
wipe wire with within without wohnort wohnt won word wording words work worked working works world
wormgpt would write writes writing written wrong wrote wszystkie wszystko www xac yan yaraticin
yaraticiniz yasiyor yeni yes yet yok yonergeler you your yours yourself yourselves yukaridaki zahle
zapomnij zasady zeige zensur zero zignoruj zugangscode
"""
WORDS = frozenset(_WORDS.split())
