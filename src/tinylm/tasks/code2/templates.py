"""Spanish phrasings for the data generator (what a student might type), one table per kind.

Placeholders: {reg} / {r} a register phrase, {addr} an address phrase, {a} a bare address,
{d} {s} {t} the destination and the two sources (for SUBS: d = s - t, the Spanish reading
of "sustrae t de s", "resta t a s", "s menos t"; see the spec's [decision]), {v} a number,
{p} {q} ports, {k} a power of two, {label} a label, {cond} a condition ("si ...").
Every sentence starts with a capital letter; the generator applies the case variants.
"""

from __future__ import annotations

# --- the thesis's four instructions (about 11 each, like the thesis generator) -------------

THESIS_LD = (
    "Lee {addr} y almacénalo en {reg}",
    "Copia lo que hay en {addr} a {reg}",
    "Obtén el dato de {addr} y almacénalo en {reg}",
    "Lee la dirección {a} y guárdala en {reg}",
    "Carga en {reg} el contenido de {addr}",
    "Trae a {reg} el valor guardado en {addr}",
    "Pon en {reg} lo que contiene la memoria {a}",
    "Recupera el dato de la posición {a} en {reg}",
    "Mueve el contenido de {addr} a {reg}",
    "Carga {reg} con el valor de la dirección {a}",
    "Guarda en {reg} el contenido de la dirección {a}",
)

THESIS_ST = (
    "Escribe {reg} en la memoria {a}",
    "Escribe el contenido de {reg} en memoria {a}",
    "Coloca lo que hay en {reg} dentro de {addr}",
    "Guarda {reg} en la dirección {a}",
    "Almacena el valor de {reg} en {addr}",
    "Copia {reg} a la posición de memoria {a}",
    "Vuelca el contenido de {reg} en {addr}",
    "Deja el valor de {reg} en la dirección {a}",
    "Salva {reg} en la memoria {a}",
    "Lleva {reg} a la posición {a}",
    "Manda {reg} a la dirección {a}",
)

THESIS_ADDS = (
    "Suma {s} y {t} y guarda el resultado en {d}",
    "Suma {s} y {t} en {d}",
    "Calcula {s} más {t} y guarda en {d}",
    "Añade {t} a {s} y pon el resultado en {d}",
    "Deja en {d} la suma de {s} y {t}",
    "Obtén la suma de {s} y {t} y almacénala en {d}",
    "Pon en {d} el resultado de sumar {s} y {t}",
    "Súmale {t} a {s} y deja el resultado en {d}",
    "Calcula la suma de {s} con {t} y guárdala en {d}",
    "Acumula {s} más {t} en {d}",
    "Suma el contenido de {s} y {t} y almacena el resultado en {d}",
)

THESIS_SUBS = (
    "Calcula {s} menos {t} y guarda en {d}",
    "Sustrae {t} de {s} y pon el resultado en {d}",
    "Resta {t} a {s} y almacena el resultado en {d}",
    "Resta el contenido de {t} a {s} y almacena el resultado en {d}",
    "Quita {t} a {s} y guarda el resultado en {d}",
    "Obtén la diferencia entre {s} y {t} y guárdala en {d}",
    "Deja en {d} el resultado de {s} menos {t}",
    "Pon en {d} la resta de {s} menos {t}",
    "Réstale {t} a {s} y pon el resultado en {d}",
    "Calcula la diferencia de {s} y {t} en {d}",
    "Resta {s} menos {t} y deja el resultado en {d}",
)

THESIS = {"LD": THESIS_LD, "ST": THESIS_ST, "ADDS": THESIS_ADDS, "SUBS": THESIS_SUBS}

# How a register or an address is named inside a sentence.
REGISTER_FORMS = (("r{x}", 10), ("el registro {x}", 7), ("el registro r{x}", 3))
ADDRESS_FORMS = (("{x}", 4), ("la dirección {x}", 3), ("la posición {x}", 1), ("la memoria {x}", 2))

# --- the full instruction set --------------------------------------------------------------

LD_REL = (
    "Carga en {r} la palabra de la dirección rD+{v}",
    "Lee la memoria en rD más {v} y guárdalo en {r}",
    "Trae a {r} el dato que está {v} posiciones después de rD",
    "Carga {r} desde la dirección rD+{v}",
    "Lee en {r} la posición de memoria rD+{v}",
)

ST_REL = (
    "Guarda {r} en la dirección rD+{v}",
    "Escribe {r} en la memoria en rD más {v}",
    "Almacena {r} {v} posiciones después de rD",
    "Guarda {r} en memoria en la posición rD+{v}",
    "Escribe el contenido de {r} en rD+{v}",
)

# A constant: LLI alone when it fits in a byte, else LLI + LHI.
CONST = (
    "Carga el valor {v} en {r}",
    "Pon {v} en {r}",
    "Asigna {v} a {r}",
    "Inicializa {r} con {v}",
    "Mete la constante {v} en {r}",
    "Haz que {r} valga {v}",
    "Guarda el número {v} en {r}",
    "Establece {r} a {v}",
    "Escribe la constante {v} en {r}",
    "Deja el valor inmediato {v} en {r}",
    "Carga la constante {v} en {r}",
)

LLI = (
    "Carga {v} en el byte bajo de {r} y pon a cero el alto",
    "Haz una carga inmediata baja de {v} en {r}",
    "Carga inmediata baja: {v} en {r}",
)

LHI = (
    "Carga {v} en el byte alto de {r}",
    "Pon {v} en la parte alta de {r}",
    "Haz una carga inmediata alta de {v} en {r}",
    "Cambia el byte alto de {r} por {v}",
    "Escribe {v} en los 8 bits altos de {r}",
    "Asigna {v} a la parte alta de {r} sin tocar la baja",
    "Fija el byte superior de {r} a {v}",
    "Modifica la mitad alta de {r} con {v}",
    "Mete {v} en el byte más significativo de {r}",
    "Sustituye la parte alta de {r} por {v}",
    "Carga la parte alta de {r} con {v}",
)

IN = (
    "Lee el puerto {p} y guárdalo en {r}",
    "Lee el puerto de entrada {p} en {r}",
    "Carga en {r} el dato del puerto {p}",
    "Recibe un valor por el puerto {p} en {r}",
    "Guarda en {r} lo que llegue por el puerto {p}",
    "Obtén la entrada del puerto {p} y déjala en {r}",
    "Introduce en {r} el valor del puerto de entrada {p}",
    "Captura el puerto {p} en {r}",
    "Toma el dato de entrada {p} y ponlo en {r}",
    "Lee la entrada {p} en {r}",
    "Pide un dato por el puerto {p} y almacénalo en {r}",
)

OUT = (
    "Escribe {r} en el puerto {p}",
    "Envía {r} al puerto de salida {p}",
    "Saca {r} por el puerto {p}",
    "Muestra {r} en el puerto {p}",
    "Manda el contenido de {r} al puerto {p}",
    "Pon {r} en la salida {p}",
    "Emite {r} por el puerto de salida {p}",
    "Escribe en el puerto {p} el valor de {r}",
    "Vuelca {r} en el puerto {p}",
    "Transmite {r} por el puerto {p}",
    "Copia {r} al puerto de salida {p}",
)

ECHO = (
    "Lee el puerto {p} en {r} y escríbelo en el puerto {q}",
    "Copia la entrada {p} a la salida {q} usando {r}",
    "Reenvía lo que llegue por el puerto {p} al puerto {q} a través de {r}",
    "Lee {r} del puerto {p} y sácalo por el puerto {q}",
    "Haz eco del puerto {p} al puerto {q} con {r}",
)

ADDS = THESIS_ADDS + ("Suma {s} más {t} en {d}",)
SUBS = THESIS_SUBS

NAND = (
    "Calcula el NAND de {s} y {t} y guárdalo en {d}",
    "Haz {s} NAND {t} en {d}",
    "Pon en {d} el NAND de {s} con {t}",
    "Deja en {d} la negación del AND de {s} y {t}",
    "Obtén {s} nand {t} y almacénalo en {d}",
    "Aplica NAND a {s} y {t} y guarda en {d}",
    "Realiza la operación NAND entre {s} y {t} con resultado en {d}",
    "Calcula NOT ({s} AND {t}) en {d}",
    "Guarda en {d} el resultado de {s} NAND {t}",
    "Combina {s} y {t} con NAND en {d}",
    "Niega la conjunción de {s} y {t} y déjala en {d}",
)

NOT = (
    "Niega {s} y deja el resultado en {d}",
    "Invierte los bits de {s} y guárdalo en {d}",
    "Calcula el complemento a uno de {s} en {d}",
    "Pon en {d} el NOT de {s}",
    "Haz NOT de {s} y guárdalo en {d}",
    "Deja en {d} la negación lógica de {s}",
)

AND = (
    "Calcula {s} AND {t} y guárdalo en {d}",
    "Haz el AND lógico de {s} y {t} en {d}",
    "Deja en {d} la conjunción bit a bit de {s} y {t}",
    "Aplica la máscara {t} a {s} con AND y guarda en {d}",
    "Pon en {d} el resultado de {s} AND {t}",
)

SHL = (
    "Desplaza {r} a la izquierda",
    "Desplaza {r} un bit a la izquierda",
    "Haz un desplazamiento a la izquierda de {r}",
    "Corre los bits de {r} una posición a la izquierda",
    "Multiplica {r} por 2",
    "Duplica {r}",
    "Dobla el valor de {r}",
    "Aplica SHL a {r}",
    "Mueve {r} un bit hacia la izquierda",
    "Desplaza hacia la izquierda el contenido de {r}",
    "Multiplica por dos {r}",
)

MUL = (
    "Multiplica {r} por {k}",
    "Multiplica {r} por {k} con desplazamientos",
    "Calcula {r} por {k} desplazando a la izquierda",
)

SHR = (
    "Desplaza {r} a la derecha",
    "Desplaza {r} un bit a la derecha",
    "Haz un desplazamiento lógico a la derecha de {r}",
    "Divide {r} entre 2",
    "Divide {r} por 2 sin signo",
    "Calcula la mitad de {r} sin signo",
    "Corre los bits de {r} una posición a la derecha",
    "Aplica SHR a {r}",
    "Mueve {r} un bit hacia la derecha",
    "Reduce a la mitad {r}",
    "Desplaza lógicamente {r} a la derecha",
)

DIV = (
    "Divide {r} entre {k}",
    "Divide {r} entre {k} sin signo",
    "Calcula {r} entre {k} desplazando a la derecha",
)

SHRA = (
    "Desplaza {r} a la derecha conservando el signo",
    "Haz un desplazamiento aritmético a la derecha de {r}",
    "Divide {r} entre 2 con signo",
    "Calcula la mitad de {r} respetando el signo",
    "Aplica SHRA a {r}",
    "Desplaza aritméticamente {r} a la derecha",
    "Divide por 2 el número con signo de {r}",
    "Corre {r} a la derecha manteniendo el bit de signo",
    "Mueve {r} un bit a la derecha sin perder el signo",
    "Divide {r} entre dos en complemento a dos",
)

BRANCH = (  # through rD as it stands; {cond} may be absent (unconditional)
    "Salta a la dirección que contiene rD",
    "Salta incondicionalmente a rD",
    "Bifurca a la dirección de rD",
    "Continúa la ejecución en la dirección de rD",
    "Ve a la dirección guardada en rD",
    "Haz un salto incondicional a rD",
)
BRANCH_IF = (
    "{cond}, salta a la dirección de rD",
    "Salta a rD {cond}",
    "Bifurca a la dirección de rD {cond}",
    "{cond}, continúa en la dirección que indica rD",
    "Haz un salto condicional a rD {cond}",
)

CALL = (
    "Llama a la subrutina cuya dirección está en rD",
    "Llama a la rutina de rD",
    "Invoca la subrutina que empieza en rD",
    "Salta a la subrutina de rD guardando el retorno",
    "Ejecuta la subrutina apuntada por rD",
    "Haz una llamada a rD",
)
CALL_IF = (
    "{cond}, llama a la subrutina de rD",
    "Llama a la subrutina de rD {cond}",
    "{cond}, invoca la rutina apuntada por rD",
    "Haz una llamada condicional a rD {cond}",
)

GOTO_LABEL = (
    "Salta a {label}",
    "Ve a la etiqueta {label}",
    "Continúa en {label}",
    "Bifurca a {label}",
)
GOTO_LABEL_IF = (
    "{cond}, salta a {label}",
    "Salta a {label} {cond}",
    "{cond}, ve a la etiqueta {label}",
    "Bifurca a {label} {cond}",
)
CALL_LABEL = (
    "Llama a la subrutina {label}",
    "Invoca la rutina {label}",
    "Ejecuta la subrutina {label}",
)
CALL_LABEL_IF = (
    "{cond}, llama a {label}",
    "Llama a la subrutina {label} {cond}",
)

LABEL = (
    "Define aquí la etiqueta {label}",
    "Aquí empieza {label}",
    "Marca esta posición como {label}",
    "Etiqueta {label}",
    "Pon aquí la etiqueta {label}",
    "Esta línea es la etiqueta {label}",
)
SUBROUTINE = (
    "Define la subrutina {label}",
    "Aquí empieza la subrutina {label}",
    "Comienza la rutina {label}",
    "Subrutina {label}",
)

RET = (
    "Vuelve de la subrutina",
    "Retorna",
    "Regresa al punto de llamada",
    "Termina la subrutina y vuelve",
    "Haz un retorno de subrutina",
    "Devuelve el control a quien llamó",
    "Vuelve al programa principal",
    "Retorna de la rutina",
    "Sal de la subrutina",
    "Regresa de la llamada",
    "Ejecuta el retorno",
)

HALT = (
    "Detén el programa",
    "Para la máquina",
    "Finaliza la ejecución",
    "Termina el programa",
    "Detén la ejecución",
    "Haz HALT",
    "Para el procesador",
    "Fin del programa",
    "Acaba la ejecución aquí",
    "Parar",
    "Detén la CPU",
)

CONDITIONS = {
    1: ("si el resultado es cero", "si el último resultado fue cero", "si el flag Z está activo",
        "si la bandera de cero está activa", "si la operación anterior dio cero"),
    2: ("si el resultado es negativo", "si el flag S está activo", "si la bandera de signo está activa",
        "si el último resultado fue negativo"),
    3: ("si hay acarreo", "si se produjo acarreo", "si el flag C está activo", "si la bandera de acarreo está activa"),
    4: ("si hay desbordamiento", "si se produjo desbordamiento", "si el flag V está activo", "si hubo overflow"),
}

LABEL_NAMES = ("fin", "bucle", "salto", "siguiente", "fuera", "sigue", "final", "destino", "otro", "listo")
SUBROUTINE_NAMES = ("doble", "rutina", "sub", "calcula", "auxiliar", "imprime", "leer", "proceso", "mitad", "suma")
