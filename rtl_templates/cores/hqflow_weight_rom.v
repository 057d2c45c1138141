// hqflow weight ROM: the packed codes of hqflow.numerics.rom (pack_rom) from a $readmemh file.
//
// A row r (one input channel, or one conv tap (c, i, j)) holds the codes of all O outputs, 64 // BITS
// codes to a 64-bit word (LANES_W). The core reads P codes (one lane group) per cycle, so the
// file's words are KW = max(1, P / LANES_W) 64-bit words wide (word k in bits [64k, 64k + 64)), a
// row padded to ROW_WIDE = ceil(O / (LANES_W * KW)) wide words: address r * ROW_WIDE + g / GPW,
// GPW = LANES_W * KW / P groups per wide word (P must divide LANES_W or be a multiple of it).
// Synchronous read (one cycle), so that synthesis maps it to block RAM. The same ROM holds the small
// per-channel tables (LIF bias, threshold, sign; the head's bias): DEPTH lines of WIDTH bits.
module hqflow_weight_rom #(parameter WIDTH = 64, DEPTH = 1, AW = 1, FILE = "weights.mem") (
    input  wire clk,
    input  wire [AW-1:0] addr,
    output reg  [WIDTH-1:0] q
);
    reg [WIDTH-1:0] mem [0:DEPTH-1];
    initial $readmemh(FILE, mem);
    always @(posedge clk) q <= mem[addr];
endmodule

// The P codes of lane group slot `wsel` (0 .. GPW-1) of a ROM line of KW 64-bit words: lane p is
// code k = wsel * P + p of the line, in word k / LANES_W, bits (k % LANES_W) * BITS (a 64-bit
// word's top 64 mod BITS bits are unused).
module hqflow_rom_select #(parameter P = 1, BITS = 8, KW = 1, WSEL_BITS = 32) (
    input  wire [64*KW-1:0] line,
    input  wire [WSEL_BITS-1:0] wsel,
    output wire [P*BITS-1:0] codes
);
    localparam LANES_W = 64 / BITS;
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
