// hqflow weight ROM: the packed codes of hqflow.numerics.rom (pack_rom) from a $readmemh file.
//
// A row r (one input channel, or one conv tap (c, i, j)) holds the codes of all O outputs, 64 // BITS
// codes to a 64-bit word (LANES_W). The core reads P codes (one lane group) per cycle, so the
// file's words are KW = max(1, P / LANES_W) 64-bit words wide (word k in bits [64k, 64k + 64)), a
// row padded to ROW_WIDE = ceil(O / (LANES_W * KW)) wide words: address r * ROW_WIDE + g / GPW,
// GPW = LANES_W * KW / P groups per wide word (P must divide LANES_W or be a multiple of it).
// Synchronous read (one cycle), so that synthesis maps it to block RAM. The same ROM holds the small
// per-channel tables (LIF bias, threshold, sign; the head's bias): DEPTH lines of WIDTH bits.
//
// TAIL > 0: the last TAIL lines (from TAIL_FILE; FILE holds the first DEPTH - TAIL) are a ROM in LUTs
// (rom_style "logic"), the others in block RAM: a ROM whose depth is just past a multiple of the block
// RAM's (fc1's 1,152 lines of 64 bits: 2 BRAM36 hold 1,024, a third would hold the last 128) then takes
// the blocks its head fills. The tail is addressed by the address's low bits (TAIL_AW bits: TAIL rounded
// up to a power of two, which must divide DEPTH - TAIL); the same one-cycle read, the line chosen by a
// registered select (one LUT level after the block RAM's output).
module hqflow_weight_rom #(parameter integer WIDTH = 64, DEPTH = 1, AW = 1, parameter FILE = "weights.mem",
                           parameter integer TAIL = 0, parameter TAIL_FILE = "weights_tail.mem") (
    input  wire clk,
    input  wire [AW-1:0] addr,
    output wire [WIDTH-1:0] q
);
    initial if (WIDTH < 1 || DEPTH < 1 || AW < 1 || (DEPTH > 1 && AW < $clog2(DEPTH)) || TAIL < 0)
        $error("hqflow_weight_rom: WIDTH %0d and DEPTH %0d must be >= 1, AW %0d >= clog2(DEPTH), TAIL %0d >= 0",
               WIDTH, DEPTH, AW, TAIL);
    generate
        if (TAIL == 0) begin : whole
            reg [WIDTH-1:0] mem [0:DEPTH-1];
            reg [WIDTH-1:0] line;
            initial $readmemh(FILE, mem);
            always @(posedge clk) line <= mem[addr];
            assign q = line;
        end else begin : split
            localparam integer HEAD = DEPTH - TAIL;
            localparam integer TAIL_AW = TAIL > 1 ? $clog2(TAIL) : 1;
            initial if (TAIL >= DEPTH || HEAD % (1 << TAIL_AW) != 0)
                $error("hqflow_weight_rom: TAIL %0d of DEPTH %0d: the head, %0d lines, must be a multiple of %0d",
                       TAIL, DEPTH, HEAD, 1 << TAIL_AW);
            reg [WIDTH-1:0] head_mem [0:HEAD-1];
            (* rom_style = "logic" *) reg [WIDTH-1:0] tail_mem [0:TAIL-1];
            reg [WIDTH-1:0] head_q, tail_q;
            reg in_tail;
            initial $readmemh(FILE, head_mem);
            initial $readmemh(TAIL_FILE, tail_mem);
            always @(posedge clk) begin
                head_q <= head_mem[addr];
                tail_q <= tail_mem[addr[TAIL_AW-1:0]];
                in_tail <= addr >= HEAD;
            end
            assign q = in_tail ? tail_q : head_q;
        end
    endgenerate
endmodule

// The P codes of lane group slot `wsel` (0 .. GPW-1) of a ROM line of KW 64-bit words: lane p is
// code k = wsel * P + p of the line, in word k / LANES_W, bits (k % LANES_W) * BITS (a 64-bit
// word's top 64 mod BITS bits are unused).
module hqflow_rom_select #(parameter integer P = 1, BITS = 8, KW = 1, WSEL_BITS = 32) (
    input  wire [64*KW-1:0] line,
    input  wire [WSEL_BITS-1:0] wsel,
    output wire [P*BITS-1:0] codes
);
    localparam integer LANES_W = 64 / BITS;
    initial if (P < 1 || KW < 1 || WSEL_BITS < 1 || (KW == 1 ? LANES_W % P != 0 : P != KW * LANES_W))
        $error("hqflow_rom_select: P %0d lanes, KW %0d: P must divide the %0d codes of a word (KW 1) or be KW times that",
               P, KW, LANES_W);
    genvar p;
    generate
        if (KW == 1) begin : one_word           // P divides LANES_W: slot s is bits [s*P*BITS, +P*BITS)
            reg [P*BITS-1:0] slot;              // a mux over the GPW slots (constant offsets, no multiply)
            integer s;
            always @* begin
                slot = line[P*BITS-1:0];
                for (s = 1; s < LANES_W / P; s = s + 1)
                    if (wsel == s) slot = line[s*P*BITS +: P*BITS];
            end
            assign codes = slot;
        end else begin : many_words             // P = KW * LANES_W: every code of the line
            for (p = 0; p < P; p = p + 1) begin : lane
                assign codes[p*BITS +: BITS] = line[(p / LANES_W) * 64 + (p % LANES_W) * BITS +: BITS];
            end
        end
    endgenerate
endmodule
