// hqflow_requant_unit: the requantization of one lane group over its T steps, L = LANES lanes a cycle, in
// place of hqflow_lif_unit.v in the weighted core (hqflow_stream_wbn.v: the Spike-driven Transformer's
// conv_bn / linear_bn). Exactly numerics.requant:
//   y = (acc * m_int + b_int) >>> SHIFT      (b_int holds the rounding's 2^(SHIFT - 1); |acc m + b| < 2^63)
// per lane and step, OUT_BITS two's complement bits of it out. The table (memfiles.requant_table): L lanes a
// line (line g M + k, lane l: output channel g P + k L + l), each lane {b_int (64 bits), m_int (32 bits)}.
// The timing is the LIF unit's, stage for stage: SELECT (the next chunk of the sums, its table line read),
// PREPARE (the products), RUN (the values shifted into the lanes' words): `take` in cycle n, `done` from
// n + T M + 2 until `words_taken`, `ready` again the cycle after (M = P / L).
module hqflow_requant_unit #(
    parameter integer P = 1, LANES = 1, T = 1, ACC_BITS = 16, OUT_BITS = 1, SHIFT = 0, LINES = 1,
    parameter REQ_FILE = "requant.mem"
) (
    input  wire clk,
    input  wire rst,
    input  wire take,                                   // (only when `ready`)
    input  wire [T*P*ACC_BITS-1:0] sums,                // step t, lane p: bits [(t P + p) ACC_BITS, +ACC_BITS)
    input  wire [(LINES > 1 ? $clog2(LINES) : 1)-1:0] line, // the group's first table line, g M
    output reg  ready,
    output reg  done,
    input  wire words_taken,
    output wire [P*T*OUT_BITS-1:0] words                // lane p: bits [p T OUT_BITS, +T OUT_BITS), step t at t OUT_BITS
);
    localparam integer L = LANES;
    localparam integer M = P / L;
    localparam integer TM = T * M;
    localparam integer OB = OUT_BITS;
    localparam integer TA = LINES > 1 ? $clog2(LINES) : 1;
    localparam integer MB = M > 1 ? $clog2(M) : 1;
    localparam integer LW = 64 + 32;                     // a lane's table bits: {b_int, m_int}
    generate
        if (L < 1 || P % L != 0) $error("hqflow_requant_unit: LANES %0d must divide P %0d", L, P);
        if (OUT_BITS < 1 || OUT_BITS > 64 || SHIFT < 0 || SHIFT > 62 || ACC_BITS < 1 || ACC_BITS > 64)
            $error("hqflow_requant_unit: OUT_BITS %0d (1..64), SHIFT %0d (0..62), ACC_BITS %0d", OUT_BITS, SHIFT,
                   ACC_BITS);
    endgenerate

    // ---- SELECT ----------------------------------------------------------------------------------
    reg [T*P*ACC_BITS-1:0] lacc;
    reg [TM-1:0] sel;
    reg selecting;
    reg [MB-1:0] ks;
    reg [TA-1:0] base, taddr;
    reg [L*ACC_BITS-1:0] chunk;
    wire [TA-1:0] tab_addr = take ? line : taddr;
    wire [L*LW-1:0] table_q;
    hqflow_weight_rom #(.WIDTH(L*LW), .DEPTH(LINES), .AW(TA), .FILE(REQ_FILE)) req_rom (clk, tab_addr, table_q);
    reg s_valid, s_end;

    // ---- PREPARE: the chunk's values ---------------------------------------------------------------
    reg [L*OB-1:0] y;
    reg r_valid, r_end;
    integer pl;
    always @(posedge clk) begin
        r_valid <= s_valid && !rst; r_end <= s_end;
        for (pl = 0; pl < L; pl = pl + 1) begin : prepare
            reg signed [63:0] product;
            product = $signed(chunk[pl*ACC_BITS +: ACC_BITS]) * $signed(table_q[pl*LW +: 32])
                      + $signed(table_q[pl*LW + 32 +: 64]);
            y[pl*OB +: OB] <= product >>> SHIFT;
        end
    end

    // ---- RUN: the values shifted in as step t of the lanes' words; the lanes turn by L a chunk -----------
    reg [P*T*OB-1:0] wrd;
    reg [P*T*OB-1:0] in_words;
    integer l;
    always @* begin
        in_words = 0;
        for (l = 0; l < L; l = l + 1)
            in_words[l*T*OB +: T*OB] = (wrd[l*T*OB +: T*OB] >> OB) | ({{(T*OB){1'b0}}} | y[l*OB +: OB]) << ((T - 1) * OB);
    end
    assign words = wrd;

    always @(posedge clk) begin
        s_valid <= selecting || take;
        if (take) begin
            lacc <= sums >> (L * ACC_BITS);
            chunk <= sums[L*ACC_BITS-1:0];
            s_end <= TM == 1;
            sel <= 2; selecting <= TM > 1;
            base <= line;
            ks <= M > 1 ? 1 : 0;
            taddr <= M > 1 ? line + 1'b1 : line;
            ready <= 0;
        end else if (selecting) begin
            chunk <= lacc[L*ACC_BITS-1:0];
            lacc <= lacc >> (L * ACC_BITS);
            s_end <= sel[TM-1];
            sel <= sel << 1; selecting <= !sel[TM-1];
            ks <= ks == M - 1 ? 0 : ks + 1'b1;
            taddr <= ks == M - 1 ? base : taddr + 1'b1;
        end
        if (r_valid) begin
            wrd <= (wrd >> (L * T * OB)) | (in_words << ((P - L) * T * OB));
            if (r_end) done <= 1;
        end
        if (words_taken) begin done <= 0; ready <= 1; end
        if (rst) begin ready <= 1; done <= 0; selecting <= 0; s_valid <= 0; end
    end

    initial begin wrd = 0; ready = 1; done = 0; selecting = 0; s_valid = 0; r_valid = 0; end
endmodule
