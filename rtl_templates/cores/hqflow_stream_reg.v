// hqflow_stream_reg: an AXI-Stream register slice (a skid buffer) between a core and its consumers. Every
// output it drives comes from a flip-flop (m_tvalid, m_tdata, m_tlast and s_tready), so that no
// combinational path runs from one core's handshake logic into another's: the clock is set by the
// slowest core alone, not by a chain of ready signals through the pipeline. One beat a cycle while the
// consumer takes them; a beat arriving while it stalls waits in the skid register (s_tready then drops
// for the cycles the skid is full). One cycle of latency; no beat is lost, reordered or changed.
module hqflow_stream_reg #(parameter integer WIDTH = 1) (
    input  wire             clk,
    input  wire             rst,
    input  wire             s_tvalid,
    output wire             s_tready,
    input  wire [WIDTH-1:0] s_tdata,
    input  wire             s_tlast,
    output reg              m_tvalid,
    input  wire             m_tready,
    output reg  [WIDTH-1:0] m_tdata,
    output reg              m_tlast
);
    initial if (WIDTH < 1) $error("hqflow_stream_reg: WIDTH %0d must be >= 1", WIDTH);
    reg skid_valid;                     // a beat taken while the output stalled
    reg [WIDTH-1:0] skid_data;
    reg skid_last;
    assign s_tready = !skid_valid;
    always @(posedge clk) begin
        if (rst) begin
            m_tvalid <= 1'b0; skid_valid <= 1'b0;
        end else if (m_tready || !m_tvalid) begin    // the output register is free this cycle
            if (skid_valid) begin
                m_tvalid <= 1'b1; m_tdata <= skid_data; m_tlast <= skid_last; skid_valid <= 1'b0;
            end else begin
                m_tvalid <= s_tvalid; m_tdata <= s_tdata; m_tlast <= s_tlast;
            end
        end else if (s_tvalid && !skid_valid) begin  // the output holds: park the beat
            skid_valid <= 1'b1; skid_data <= s_tdata; skid_last <= s_tlast;
        end
    end
    initial begin m_tvalid = 0; skid_valid = 0; end
endmodule
