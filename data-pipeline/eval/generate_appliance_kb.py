# ruff: noqa: E501  (the fault table is prose; wrapping it would only hurt reading)
"""Generate the Nova retrieval evaluation set (BEIR layout) deterministically.

Domain: the service knowledge base of a fictional appliance maker, Norrland. 10 product lines x
5 models x 5 faults = 250 troubleshooting articles, and 75 queries of three kinds:

* lexical  - exact identifiers (model number + error code + part number). BM25 wins: the codes
             carry little meaning for a sentence embedder and every article of a product line
             reads alike.
* semantic - how a customer describes the problem, in words the articles do not use. Dense wins;
             every model's article for that fault is relevant.
* mixed    - a model number plus a customer-style description: only the intersection is
             relevant, so each retriever alone finds half of the signal.

Run: python generate_appliance_kb.py [OUT_DIR]  (same output every time: seeded RNG, sorted ids).
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

# (prefix, product noun, line name, [5 model numbers], [5 faults])
# fault: (code, title, [doc symptom variants], cause, [fix steps], [customer phrasings], part)
LINES: list[
    tuple[str, str, str, list[str], list[tuple[str, str, list[str], str, list[str], list[str], str]]]
] = [
    (
        "DW",
        "dishwasher",
        "AquaPure",
        ["4410", "5520", "6630", "7740", "8850"],
        [
            (
                "E24",
                "Drain fault",
                [
                    "Standing water remains in the tub at the end of the cycle and the display shows {code}.",
                    "The appliance stops mid-program with {code} because water is not pumped out of the sump.",
                ],
                "The drain pump impeller is obstructed by debris or the drain hose is kinked behind the unit.",
                [
                    "Remove and rinse the coarse filter and microfilter under running water.",
                    "Check the drain hose for kinks and confirm the air gap is clear.",
                    "Turn the drain pump impeller by hand; replace pump {part} if it is seized.",
                ],
                [
                    "there is a puddle of dirty liquid sitting at the bottom after it finishes washing my plates",
                    "murky pool left inside after every load, it never empties",
                ],
                "PN-DP{n}",
            ),
            (
                "E15",
                "Leak protection triggered",
                [
                    "The base pan float switch has detected liquid and the unit reports {code}; the drain pump runs continuously.",
                    "{code} appears when the anti-flood system detects water in the base pan.",
                ],
                "A loose hose clamp, a cracked spray arm hub or oversudsing from hand-washing detergent leaks water into the base.",
                [
                    "Disconnect power and tilt the unit forward 45 degrees to empty the base pan.",
                    "Inspect the circulation pump seal and hose clamps for drips.",
                    "Replace the float switch assembly {part} if it stays stuck after drying.",
                ],
                [
                    "kitchen floor gets soaked under the machine and the pump hums nonstop",
                    "it keeps trying to empty itself while my tiles get wet",
                ],
                "PN-FS{n}",
            ),
            (
                "E09",
                "Heating element failure",
                [
                    "Dishes come out cold and wet; the wash temperature never rises above inlet temperature and {code} is logged.",
                    "The heater circuit reads open, so the controller aborts the heated rinse with {code}.",
                ],
                "The heating element has burnt out or the thermal fuse on the heater has tripped.",
                [
                    "Measure the element resistance; a healthy element reads 20-40 ohms.",
                    "Check the thermal fuse continuity on the heater bracket.",
                    "Replace heating element kit {part} and run a test program.",
                ],
                [
                    "my cups and bowls finish lukewarm and damp, nothing ever gets hot",
                    "cycle ends but everything feels chilly and drippy",
                ],
                "PN-HE{n}",
            ),
            (
                "E04",
                "Spray arm blockage",
                [
                    "Food residue remains on the upper rack and the flow sensor reports low circulation pressure ({code}).",
                    "Poor cleaning results on the top basket are accompanied by {code}, a circulation pressure warning.",
                ],
                "Spray arm nozzles are clogged with seeds, glass fragments or limescale.",
                [
                    "Unclip the upper and lower spray arms.",
                    "Clear each nozzle with a toothpick and soak the arms in citric acid solution.",
                    "Refit the arms and confirm they rotate freely; replace arm {part} if cracked.",
                ],
                [
                    "bits of old food still stuck on glasses on the top level after a run",
                    "upstairs tray stays grimy, like nothing sprayed up there",
                ],
                "PN-SA{n}",
            ),
            (
                "E31",
                "Door latch not detected",
                [
                    "The program will not start and {code} flashes because the controller cannot confirm the door is closed.",
                    "A faulty door switch signal produces {code} and the start button is ignored.",
                ],
                "The latch strike is misaligned or the door switch microcontacts are worn.",
                [
                    "Adjust the door strike plate so the latch engages with an audible click.",
                    "Test the door switch for continuity in the closed position.",
                    "Replace latch assembly {part} if the switch reads open when latched.",
                ],
                [
                    "pressing go does nothing even though i shut it firmly",
                    "won't begin, acts like it is still open",
                ],
                "PN-DL{n}",
            ),
        ],
    ),
    (
        "WM",
        "washing machine",
        "PureSpin",
        ["2100", "3200", "4300", "5400", "6500"],
        [
            (
                "F21",
                "Long drain time",
                [
                    "Water drains too slowly and the program stops with {code} before the spin phase.",
                    "The drum still holds rinse water after the drain timeout, so {code} is shown.",
                ],
                "The pump filter behind the kick plate is clogged with lint, coins or hair ties.",
                [
                    "Place a shallow tray under the service flap and unscrew the pump filter slowly.",
                    "Remove lint and foreign objects and check the impeller turns.",
                    "Replace drain pump {part} if the impeller is damaged.",
                ],
                [
                    "clothes are sopping and there is still a tub of liquid when it should be spinning",
                    "stops before whirling and my laundry is swimming",
                ],
                "PN-WP{n}",
            ),
            (
                "F08",
                "Heater fault",
                [
                    "Wash water stays cold on 60 degree programs and the controller reports {code}.",
                    "{code} indicates the heating element resistance is out of range.",
                ],
                "The heating element is corroded through or the NTC temperature sensor has failed.",
                [
                    "Remove the rear panel to access the element terminals.",
                    "Measure the element (about 26 ohms) and the NTC sensor (about 5 kOhm at room temperature).",
                    "Replace heater and sensor kit {part}.",
                ],
                [
                    "hot setting feels freezing, stains do not come out",
                    "even on the boiling cotton option my whites come out icy",
                ],
                "PN-WH{n}",
            ),
            (
                "F13",
                "Unbalanced load",
                [
                    "The drum shakes violently and the spin is cancelled with {code} after several redistribution attempts.",
                    "Spin speed is limited to 400 rpm and {code} is stored because the load is unbalanced.",
                ],
                "A single heavy item, worn shock absorbers or shipping bolts left in place unbalance the drum.",
                [
                    "Confirm the transit bolts have been removed from the back panel.",
                    "Redistribute the load or add items of similar weight.",
                    "Test the shock absorbers and replace kit {part} if they compress without resistance.",
                ],
                [
                    "it jumps around the utility room and bangs like crazy near the end",
                    "the whole unit walks across the floor thumping",
                ],
                "PN-SH{n}",
            ),
            (
                "F05",
                "Water inlet problem",
                [
                    "The drum does not fill within eight minutes and the display shows {code}.",
                    "Insufficient inflow triggers {code}; the inlet valve is energised but the level sensor sees no rise.",
                ],
                "The tap is closed, the inlet hose filter screen is blocked or the inlet valve coil has failed.",
                [
                    "Check the supply tap is fully open and the hose is not kinked.",
                    "Clean the mesh screen inside the inlet hose connection.",
                    "Measure the inlet valve coil and replace valve {part} if open circuit.",
                ],
                [
                    "nothing comes in when it starts, it just sits dry and beeps",
                    "no supply flowing into it from the tap, stays empty",
                ],
                "PN-IV{n}",
            ),
            (
                "F34",
                "Door lock failure",
                [
                    "The door lock does not engage and the cycle cannot start ({code}).",
                    "{code} is reported when the lock actuator fails to confirm the locked position.",
                ],
                "The door interlock bimetal is worn or the door hinge sags so the hook misses the lock.",
                [
                    "Check that the door hook enters the lock slot cleanly.",
                    "Measure the interlock coil resistance.",
                    "Replace interlock {part} and re-align the hinge.",
                ],
                [
                    "front hatch will not latch so it refuses to run",
                    "can't get it going because the porthole never clicks shut",
                ],
                "PN-IL{n}",
            ),
        ],
    ),
    (
        "TD",
        "tumble dryer",
        "AirSoft",
        ["1150", "2250", "3350", "4450", "5550"],
        [
            (
                "F07",
                "Overheating",
                [
                    "The dryer shuts the heater off and shows {code} because the exhaust temperature limit was exceeded.",
                    "{code} is logged when the high-limit thermostat opens during drying.",
                ],
                "A blocked lint screen or a crushed vent duct restricts airflow.",
                [
                    "Clean the lint screen and the lint chute with a vacuum nozzle.",
                    "Check the exhaust duct is shorter than 6 metres and free of kinks.",
                    "Replace the high-limit thermostat {part} if it does not reset.",
                ],
                [
                    "the thing gets scorching hot and cuts out halfway, smells like burning fluff",
                    "switches itself off because it is roasting inside",
                ],
                "PN-HT{n}",
            ),
            (
                "F12",
                "Moisture sensor fault",
                [
                    "Sensor drying programs end early and laundry remains damp; the controller reports {code}.",
                    "{code} indicates the moisture sensor bars give an implausible reading.",
                ],
                "The sensor bars are coated with fabric softener film.",
                [
                    "Wipe the two metal sensor bars inside the drum with a cloth and vinegar.",
                    "Check the sensor harness connector behind the drum.",
                    "Replace sensor bar set {part} if readings stay invalid.",
                ],
                [
                    "towels are still wet when it says it is done",
                    "garments come out soggy though the program claims complete",
                ],
                "PN-MS{n}",
            ),
            (
                "F02",
                "Drum not turning",
                [
                    "The motor hums but the drum does not rotate and {code} is displayed.",
                    "{code} is reported when the motor runs but no drum rotation is detected.",
                ],
                "The drive belt has snapped or slipped off the idler pulley.",
                [
                    "Remove the front panel to access the belt.",
                    "Inspect the belt and idler pulley.",
                    "Fit drive belt {part} around the drum, idler and motor pulley.",
                ],
                [
                    "i can hear a buzz but the barrel stays still",
                    "it makes a whirring noise yet nothing spins round",
                ],
                "PN-DB{n}",
            ),
            (
                "F19",
                "Condenser water tank full",
                [
                    "The program pauses with {code} because the condensate container is full or the pump cannot empty it.",
                    "{code} appears when the condensate pump fails to move water to the tank.",
                ],
                "The condensate pump filter is blocked with lint or the tank float is stuck.",
                [
                    "Empty the water container and rinse it.",
                    "Clean the condenser unit and the pump filter.",
                    "Replace condensate pump {part} if it does not run.",
                ],
                [
                    "it stops and nags me about emptying the reservoir even right after i did",
                    "keeps halting asking for the container though it is empty",
                ],
                "PN-CP{n}",
            ),
            (
                "F25",
                "Heater relay failure",
                [
                    "The drum turns but air stays cold; {code} indicates the heating relay does not switch.",
                    "No heat is produced and {code} is logged after ten minutes.",
                ],
                "The heater relay on the control board has welded contacts or the element is open.",
                [
                    "Measure the heating element resistance at the terminals.",
                    "Test the relay output on the control board.",
                    "Replace control board {part} if the relay does not click.",
                ],
                [
                    "goes round and round for ages but my stuff never warms",
                    "air blowing inside feels chilly, nothing dries",
                ],
                "PN-CB{n}",
            ),
        ],
    ),
    (
        "RF",
        "refrigerator",
        "FrostLine",
        ["300", "400", "500", "600", "700"],
        [
            (
                "C41",
                "Evaporator fan failure",
                [
                    "The freezer is cold but the fresh food compartment warms up; {code} reports the evaporator fan is stalled.",
                    "{code} indicates the evaporator fan draws no current.",
                ],
                "Ice build-up on the fan blade or a failed fan motor stops airflow.",
                [
                    "Run a manual defrost for 4 hours with the doors open.",
                    "Check the fan spins freely after defrost.",
                    "Replace evaporator fan {part}.",
                ],
                [
                    "milk goes off quickly and the lower section feels warm while ice cream is fine",
                    "upper freezy part works but the main food area is getting tepid",
                ],
                "PN-EF{n}",
            ),
            (
                "C12",
                "Defrost heater fault",
                [
                    "Thick frost covers the rear panel of the freezer and {code} is stored because defrost never completes.",
                    "{code} signals that the defrost heater circuit is open.",
                ],
                "The defrost heater or the defrost thermostat has failed.",
                [
                    "Remove the rear freezer panel and inspect the evaporator for ice.",
                    "Measure the defrost heater and defrost thermostat.",
                    "Replace defrost heater {part}.",
                ],
                [
                    "a thick layer of ice has grown all over the back wall of the freezing compartment",
                    "snowy crust builds up inside and blocks the vents",
                ],
                "PN-DH{n}",
            ),
            (
                "C05",
                "Water filter bypass",
                [
                    "The ice maker stops producing cubes and the water dispenser flow is weak; {code} indicates a clogged filter.",
                    "{code} reminds the user the water filter has exceeded its capacity.",
                ],
                "The water filter cartridge is saturated with sediment.",
                [
                    "Replace filter cartridge {part}.",
                    "Flush 10 litres through the dispenser to purge air.",
                    "Reset the filter counter by holding the filter button for three seconds.",
                ],
                [
                    "cubes stopped appearing and the drinking spout only dribbles",
                    "can't get any ice and the tap on the door barely trickles",
                ],
                "PN-WF{n}",
            ),
            (
                "C27",
                "Door ajar alarm",
                [
                    "An alarm beeps and {code} appears although the door looks closed.",
                    "{code} is raised when the door switch reports open for more than two minutes.",
                ],
                "A torn door gasket or a misaligned door stops the reed switch from closing.",
                [
                    "Check the gasket seals evenly with a paper strip test.",
                    "Level the cabinet so doors swing closed by themselves.",
                    "Replace door gasket {part} if torn.",
                ],
                [
                    "keeps beeping at me as if i left it open but it is shut",
                    "annoying chirp nonstop while everything looks closed",
                ],
                "PN-DG{n}",
            ),
            (
                "C33",
                "Compressor start failure",
                [
                    "Both compartments warm up, the compressor clicks every few minutes and {code} is reported.",
                    "{code} indicates the compressor failed to start three times.",
                ],
                "The start relay or the inverter board driving the compressor has failed.",
                [
                    "Listen for a click from the compressor area every 3-5 minutes.",
                    "Test the start relay or inverter board output.",
                    "Replace inverter board {part}.",
                ],
                [
                    "everything inside is getting warm and there's a ticking sound from the back",
                    "food spoiling, hear a tick from the bottom rear but no hum",
                ],
                "PN-IB{n}",
            ),
        ],
    ),
    (
        "OV",
        "oven",
        "HearthPro",
        ["60", "70", "80", "90", "95"],
        [
            (
                "E3",
                "Door lock motor failure",
                [
                    "The pyrolytic self-clean program cannot start and {code} is displayed because the door lock motor does not reach the locked position.",
                    "{code} indicates the door lock motor switch never closes.",
                ],
                "The lock motor or its cam switch has failed.",
                [
                    "Remove the top cover to reach the lock motor.",
                    "Check the motor turns when powered.",
                    "Replace door lock motor {part}.",
                ],
                [
                    "the self cleaning mode refuses to begin and the latch never slides over",
                    "auto clean won't run, door stays unsecured",
                ],
                "PN-LM{n}",
            ),
            (
                "E5",
                "Temperature sensor fault",
                [
                    "The oven overshoots the set temperature by 40 degrees and {code} indicates a temperature probe error.",
                    "{code} is shown when the oven sensor resistance is out of range.",
                ],
                "The PT1000 oven sensor has failed or its connector is loose.",
                [
                    "Measure the sensor: about 1100 ohms at room temperature.",
                    "Inspect the connector at the back panel.",
                    "Replace oven sensor {part}.",
                ],
                [
                    "cakes burn on the outside because it gets way hotter than what i chose",
                    "baking runs much too hot and scorches the bread",
                ],
                "PN-TS{n}",
            ),
            (
                "E7",
                "Cooling fan failure",
                [
                    "The control panel becomes hot and {code} is displayed because the tangential cooling fan is not running.",
                    "{code} indicates the cooling fan speed sensor reports zero rpm.",
                ],
                "The cooling fan motor is seized or its thermal fuse is open.",
                [
                    "Check the fan at the top of the oven runs during cooking.",
                    "Clear grease deposits from the fan wheel.",
                    "Replace cooling fan {part}.",
                ],
                [
                    "the knobs and front get really warm to touch while roasting",
                    "buttons area is burning my fingers during baking",
                ],
                "PN-CF{n}",
            ),
            (
                "E1",
                "Bake element failure",
                [
                    "The bottom element does not glow and baking takes twice as long; {code} is stored.",
                    "{code} signals the lower heating element circuit is open.",
                ],
                "The bake element has burnt through.",
                [
                    "Inspect the lower element for blisters or breaks.",
                    "Measure continuity of the element.",
                    "Replace bake element {part}.",
                ],
                [
                    "pizza bases stay pale and raw underneath",
                    "the floor of the cooking compartment never warms so bottoms are doughy",
                ],
                "PN-BE{n}",
            ),
            (
                "E9",
                "Hob ignition fault",
                [
                    "The gas burner clicks but does not light and {code} indicates the flame was not detected.",
                    "{code} is reported after three failed ignition attempts.",
                ],
                "The igniter electrode is dirty or the burner cap is misaligned.",
                [
                    "Clean the igniter electrode with a dry brush.",
                    "Seat the burner cap correctly.",
                    "Replace igniter {part} if it does not spark.",
                ],
                [
                    "the stove top keeps ticking but no fire comes",
                    "cooktop makes snapping sounds and never catches",
                ],
                "PN-IG{n}",
            ),
        ],
    ),
    (
        "AC",
        "air conditioner",
        "ClimaCool",
        ["9K", "12K", "18K", "24K", "30K"],
        [
            (
                "P4",
                "Outdoor fan fault",
                [
                    "The outdoor unit stops and {code} is displayed because the condenser fan motor feedback is missing.",
                    "{code} indicates the DC fan motor of the outdoor unit is not rotating.",
                ],
                "The outdoor fan motor has failed or is blocked by debris.",
                [
                    "Switch off the isolator and check the fan blade turns freely.",
                    "Check the fan connector on the outdoor board.",
                    "Replace outdoor fan motor {part}.",
                ],
                [
                    "the box outside on the wall stopped whirring and the room never cools",
                    "external unit is silent and it blows warm air indoors",
                ],
                "PN-OF{n}",
            ),
            (
                "E6",
                "Refrigerant low",
                [
                    "Cooling capacity is poor and {code} indicates low refrigerant pressure.",
                    "{code} is set when the suction temperature stays high while the compressor runs.",
                ],
                "A refrigerant leak at a flare joint.",
                [
                    "Check flare joints with leak detection spray.",
                    "Recover, repair and pressure test the circuit.",
                    "Recharge with R32 per the nameplate; replace flare nut kit {part}.",
                ],
                [
                    "it runs all day yet my bedroom is still stuffy and sweaty",
                    "blowing but barely chilly, house stays muggy",
                ],
                "PN-FN{n}",
            ),
            (
                "E2",
                "Indoor coil frost protection",
                [
                    "The indoor coil freezes and {code} appears; the compressor stops to protect the evaporator.",
                    "{code} indicates the indoor pipe temperature fell below freezing.",
                ],
                "A dirty air filter restricts airflow over the indoor coil.",
                [
                    "Clean the indoor air filters.",
                    "Check the indoor fan speed.",
                    "Replace indoor pipe sensor {part}.",
                ],
                [
                    "ice is forming on the unit inside the room and it drips",
                    "the wall head gets frosty and water runs down the wall",
                ],
                "PN-PS{n}",
            ),
            (
                "C9",
                "Condensate pump fault",
                [
                    "Water leaks from the indoor unit and {code} indicates the condensate pump float is high.",
                    "{code} shows the condensate pump cannot clear the drain tray.",
                ],
                "The drain line is blocked with algae.",
                [
                    "Flush the drain line with warm water.",
                    "Clean the pump float chamber.",
                    "Replace condensate pump {part}.",
                ],
                [
                    "it's dripping onto my sofa from the unit up high",
                    "puddles under the wall thing after it runs",
                ],
                "PN-CD{n}",
            ),
            (
                "U1",
                "Communication error",
                [
                    "The indoor and outdoor units lose communication and {code} is shown.",
                    "{code} indicates no signal on the interconnecting cable.",
                ],
                "A loose terminal on the interconnecting cable or a failed communication board.",
                [
                    "Check terminal screws on both units.",
                    "Measure the signal line.",
                    "Replace communication board {part}.",
                ],
                [
                    "the inside and outside parts don't seem to talk to each other, it just blinks",
                    "remote works but nothing happens, lights flash",
                ],
                "PN-CM{n}",
            ),
        ],
    ),
    (
        "WH",
        "water heater",
        "ThermaFlow",
        ["50", "80", "100", "120", "150"],
        [
            (
                "H1",
                "Anode depleted",
                [
                    "Hot water smells of rotten eggs and {code} reminds you the sacrificial anode is consumed.",
                    "{code} indicates the anode protection current is too low.",
                ],
                "The magnesium anode has dissolved.",
                ["Drain 20 litres from the tank.", "Remove the anode with a socket.", "Fit anode {part}."],
                ["the shower smells like sulphur lately", "tap water from the bath reeks of bad eggs"],
                "PN-AN{n}",
            ),
            (
                "H3",
                "Thermostat failure",
                [
                    "Water is scalding hot and {code} indicates the safety cutout tripped.",
                    "{code} is set when tank temperature exceeds 85 degrees.",
                ],
                "The control thermostat contacts are welded shut.",
                ["Reset the safety cutout.", "Test the thermostat switching.", "Replace thermostat {part}."],
                ["the tap nearly burned my hand, it's way too hot", "shower is boiling and dangerous"],
                "PN-TH{n}",
            ),
            (
                "H5",
                "Element scale",
                [
                    "Heating takes much longer than usual and {code} shows the element is scaled.",
                    "{code} indicates slow temperature rise.",
                ],
                "Limescale coats the immersion element.",
                ["Drain the tank.", "Descale the element.", "Replace immersion element {part}."],
                ["takes forever before I get a warm bath", "waiting hours for the tank to warm up"],
                "PN-IE{n}",
            ),
            (
                "H7",
                "Pressure relief discharge",
                [
                    "The pressure relief valve discharges constantly and {code} indicates high tank pressure.",
                    "{code} appears when the expansion vessel has lost its charge.",
                ],
                "The expansion vessel membrane has failed.",
                ["Check the expansion vessel pre-charge.", "Recharge to 3 bar.", "Replace valve {part}."],
                [
                    "a pipe outside is constantly dribbling and there is a hissing",
                    "overflow pipe keeps spitting water",
                ],
                "PN-PV{n}",
            ),
            (
                "H9",
                "Tank leak",
                [
                    "Water pools under the cylinder and {code} reports the leak sensor is wet.",
                    "{code} indicates moisture detected at the base.",
                ],
                "Internal corrosion has perforated the tank.",
                [
                    "Isolate the supply.",
                    "Confirm the leak is from the tank and not a fitting.",
                    "Replace the cylinder; order kit {part}.",
                ],
                [
                    "the cupboard floor under the boiler is soaking",
                    "water everywhere at the bottom of the cylinder cupboard",
                ],
                "PN-TK{n}",
            ),
        ],
    ),
    (
        "RV",
        "robot vacuum",
        "CleanBot",
        ["S1", "S2", "S3", "S5", "S7"],
        [
            (
                "R14",
                "Brush roll jammed",
                [
                    "The main brush is entangled and {code} is reported.",
                    "{code} indicates brush motor overcurrent.",
                ],
                "Hair wrapped around the brush roll.",
                ["Remove the brush guard.", "Cut hair off the brush roll.", "Replace brush roll {part}."],
                [
                    "my cleaner robot stopped and beeps about hair tangled underneath",
                    "the little bot gets stuck with a clump of pet fur",
                ],
                "PN-BR{n}",
            ),
            (
                "R22",
                "Cliff sensor dirty",
                [
                    "The robot refuses to move and {code} indicates a cliff sensor fault.",
                    "{code} appears when cliff sensors see no floor.",
                ],
                "Dust covers the cliff sensors.",
                ["Wipe the cliff sensors.", "Avoid dark carpets.", "Replace sensor board {part}."],
                [
                    "robot just spins in place on the rug, scared of the floor",
                    "it won't drive forward on my black carpet",
                ],
                "PN-CS{n}",
            ),
            (
                "R31",
                "Docking failure",
                [
                    "The robot cannot find the charging base and {code} is logged.",
                    "{code} indicates docking infrared signal lost.",
                ],
                "The dock is placed in a corner or IR window is dirty.",
                ["Place the dock against a wall.", "Clean the IR window.", "Replace dock {part}."],
                [
                    "it wanders around and never goes home to recharge",
                    "keeps running out of juice away from its station",
                ],
                "PN-DK{n}",
            ),
            (
                "R08",
                "Wheel stuck",
                [
                    "A drive wheel is blocked and {code} is reported.",
                    "{code} indicates wheel motor stall.",
                ],
                "Debris in the wheel well.",
                ["Clean the wheel well.", "Check wheel suspension.", "Replace wheel module {part}."],
                [
                    "it drags to one side and stops like a leg is broken",
                    "one side won't roll so it goes in circles",
                ],
                "PN-WM{n}",
            ),
            (
                "R45",
                "Battery degradation",
                [
                    "Run time drops below 30 minutes and {code} indicates battery health is low.",
                    "{code} appears when battery capacity falls under 60 percent.",
                ],
                "The lithium-ion pack has aged.",
                ["Calibrate the battery.", "Check charging contacts.", "Replace battery {part}."],
                ["it dies after just one room now", "lasts only a few minutes before needing power again"],
                "PN-BT{n}",
            ),
        ],
    ),
    (
        "EM",
        "espresso machine",
        "BaristaOne",
        ["100", "200", "300", "400", "500"],
        [
            (
                "A2",
                "Boiler scale",
                [
                    "Flow is reduced and {code} warns the boiler needs descaling.",
                    "{code} indicates the descale counter expired.",
                ],
                "Limescale builds in the boiler.",
                ["Run the descale program.", "Use citric acid descaler.", "Replace boiler gasket {part}."],
                ["coffee comes out slow and dribbly", "shots take ages to trickle into the cup"],
                "PN-BG{n}",
            ),
            (
                "A5",
                "Grinder jam",
                [
                    "The grinder motor stalls and {code} is shown.",
                    "{code} indicates burr blockage.",
                ],
                "Oily beans clog the burrs.",
                ["Remove the hopper.", "Clean the burrs.", "Replace burr set {part}."],
                [
                    "the bean crusher hums and stops",
                    "it can't mill the beans anymore, makes a straining sound",
                ],
                "PN-BS{n}",
            ),
            (
                "A7",
                "Pump pressure low",
                [
                    "Extraction pressure stays below 6 bar and {code} is logged.",
                    "{code} indicates the vibratory pump is weak.",
                ],
                "The pump is worn or air is trapped.",
                ["Prime the pump.", "Check the water tank valve.", "Replace pump {part}."],
                ["my drinks are watery and weak with no crema", "shots are thin and pale"],
                "PN-VP{n}",
            ),
            (
                "A9",
                "Steam wand blocked",
                [
                    "No steam exits the wand and {code} is shown.",
                    "{code} indicates steam valve blockage.",
                ],
                "Milk residue dries in the wand tip.",
                ["Soak the wand tip.", "Clear the holes with a pin.", "Replace steam valve {part}."],
                ["can't froth milk anymore, the frother just sputters", "no hissing from the milk nozzle"],
                "PN-SV{n}",
            ),
            (
                "A3",
                "Water tank sensor",
                [
                    "The machine asks to fill water although the tank is full; {code}.",
                    "{code} indicates the tank float magnet is not detected.",
                ],
                "The float magnet is missing or stuck.",
                ["Remove and clean the tank float.", "Check the reed sensor.", "Replace float {part}."],
                [
                    "it keeps telling me to refill even though it's brimming",
                    "asks for more liquid constantly",
                ],
                "PN-FT{n}",
            ),
        ],
    ),
    (
        "MW",
        "microwave",
        "QuickWave",
        ["20", "25", "30", "32", "40"],
        [
            (
                "M1",
                "Magnetron failure",
                [
                    "The turntable rotates but food does not heat; {code}.",
                    "{code} indicates no anode current in the magnetron.",
                ],
                "The magnetron or high-voltage diode has failed.",
                ["Discharge the capacitor.", "Test the diode.", "Replace magnetron {part}."],
                ["the plate spins but my soup stays cold", "leftovers come out as chilly as they went in"],
                "PN-MG{n}",
            ),
            (
                "M3",
                "Door interlock fault",
                [
                    "The unit blows the fuse when the door closes; {code}.",
                    "{code} indicates interlock monitor switch failure.",
                ],
                "The monitor switch is welded.",
                ["Replace the fuse.", "Test the switches.", "Replace interlock kit {part}."],
                [
                    "shutting it kills the power and it goes dead",
                    "closing the front trips something and everything goes dark",
                ],
                "PN-IK{n}",
            ),
            (
                "M5",
                "Turntable motor",
                [
                    "The glass tray does not turn; {code}.",
                    "{code} indicates turntable motor stall.",
                ],
                "The turntable motor is worn.",
                ["Check the coupler.", "Test the motor.", "Replace turntable motor {part}."],
                ["the glass plate stays still so half my meal is frozen", "dish doesn't go round anymore"],
                "PN-TT{n}",
            ),
            (
                "M7",
                "Arcing",
                [
                    "Sparks appear inside the cavity; {code}.",
                    "{code} indicates arcing detected by the sensor.",
                ],
                "The waveguide cover is contaminated.",
                ["Clean the cavity.", "Replace the waveguide cover.", "Order cover {part}."],
                [
                    "there are little lightning flashes inside when heating",
                    "crackling blue flashes inside the box",
                ],
                "PN-WG{n}",
            ),
            (
                "M9",
                "Keypad failure",
                [
                    "Buttons do not respond; {code}.",
                    "{code} indicates membrane keypad open circuit.",
                ],
                "The membrane keypad ribbon is cracked.",
                ["Check the ribbon connector.", "Test the keypad matrix.", "Replace keypad {part}."],
                ["pressing the numbers does nothing", "touch panel ignores my fingers"],
                "PN-KP{n}",
            ),
        ],
    ),
]

INTROS = [
    "Applies to the Norrland {line} {model} {noun}.",
    "This article covers the {noun} model {model} from the Norrland {line} range.",
    "Service note for Norrland {line} {model} ({noun}).",
    "Technician guide: Norrland {model} {line} {noun}.",
]
CLOSINGS = [
    "If the fault returns after these steps, book a service visit and quote the serial number from the rating plate.",
    "Clear the fault memory by holding the power button for five seconds after the repair.",
    "Firmware {fw} and later log this code with a timestamp in the service menu.",
    "Use only original Norrland spare parts; the part number is printed on the packaging.",
    "Always disconnect power before removing panels.",
]
LEXICAL = [
    "{model} error {code}",
    "what does code {code} mean on {model}",
    "{model} {code} fault {part}",
    "{part} replacement {model}",
]
MIXED = ["{model} {symptom}", "{symptom} on my {model}", "{model}: {symptom}"]


def build(
    rng: random.Random,
) -> tuple[list[dict[str, object]], list[dict[str, str]], list[tuple[str, str, int]]]:
    corpus: list[dict[str, object]] = []
    docs_by_fault: dict[tuple[str, str], list[str]] = {}
    doc_info: dict[str, dict[str, str]] = {}
    for prefix, noun, line, numbers, faults in LINES:
        for mi, number in enumerate(numbers):
            model = f"{prefix}-{number}"
            for fi, (code, title, symptoms, cause, steps, _say, part_t) in enumerate(faults):
                part = part_t.format(n=f"{mi + 1}{fi + 3}{len(number)}")
                doc_id = f"{prefix.lower()}{number.lower()}-{code.lower()}"
                fw = f"{rng.randint(2, 6)}.{rng.randint(0, 9)}.{rng.randint(0, 30)}"
                parts = [
                    rng.choice(INTROS).format(line=line, model=model, noun=noun),
                    rng.choice(symptoms).format(code=code),
                    "Cause: " + cause,
                    "Fix: " + " ".join(f"{i + 1}. {s.format(part=part)}" for i, s in enumerate(steps)),
                    rng.choice(CLOSINGS).format(fw=fw),
                ]
                corpus.append(
                    {"_id": doc_id, "title": f"{model} {noun}: {code} {title}", "text": "\n\n".join(parts)}
                )
                docs_by_fault.setdefault((prefix, code), []).append(doc_id)
                doc_info[doc_id] = {"model": model, "code": code, "part": part, "prefix": prefix}
    queries: list[dict[str, str]] = []
    qrels: list[tuple[str, str, int]] = []
    all_faults = [(p, f) for p, _n, _l, _nums, faults in LINES for f in faults]
    # 25 lexical: one specific article by identifiers
    for i, doc_id in enumerate(rng.sample(sorted(doc_info), 25)):
        info = doc_info[doc_id]
        qid = f"lex{i:02d}"
        queries.append({"_id": qid, "text": rng.choice(LEXICAL).format(**info)})
        qrels.append((qid, doc_id, 1))
    # 25 semantic: a customer's description; every model's article for the fault is relevant
    for i, (prefix, fault) in enumerate(rng.sample(all_faults, 25)):
        qid = f"sem{i:02d}"
        noun = next(n for p, n, *_ in LINES if p == prefix)
        queries.append({"_id": qid, "text": f"{noun}: {rng.choice(fault[5])}"})
        qrels.extend((qid, d, 1) for d in docs_by_fault[(prefix, fault[0])])
    # 25 mixed: model number + description; only that model's article is relevant
    for i, (prefix, fault) in enumerate(rng.sample(all_faults, 25)):
        qid = f"mix{i:02d}"
        candidates = docs_by_fault[(prefix, fault[0])]
        doc_id = rng.choice(candidates)
        text = rng.choice(MIXED).format(model=doc_info[doc_id]["model"], symptom=rng.choice(fault[5]))
        queries.append({"_id": qid, "text": text})
        qrels.append((qid, doc_id, 1))
    return corpus, queries, qrels


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "appliance_kb"
    corpus, queries, qrels = build(random.Random(20261122))
    (out / "qrels").mkdir(parents=True, exist_ok=True)
    with open(out / "corpus.jsonl", "w", encoding="utf-8") as f:
        for doc in corpus:
            f.write(json.dumps(doc, ensure_ascii=False) + "\n")
    with open(out / "queries.jsonl", "w", encoding="utf-8") as f:
        for q in queries:
            f.write(json.dumps(q, ensure_ascii=False) + "\n")
    with open(out / "qrels" / "test.tsv", "w", encoding="utf-8") as f:
        f.write("query-id\tcorpus-id\tscore\n")
        for qid, doc_id, score in qrels:
            f.write(f"{qid}\t{doc_id}\t{score}\n")
    print(f"{len(corpus)} documents, {len(queries)} queries, {len(qrels)} judgments -> {out}")


if __name__ == "__main__":
    main()
